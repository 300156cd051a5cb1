"""`make typecheck`: mypy over the installed package `mlmon`, laid out as it is installed.

The repository keeps one folder per part (exporter/ is installed as mlmon.exporter, see
[tool.setuptools.package-dir] in pyproject.toml). mypy cannot follow the editable install's
import hook, and it names a module after its place on disk, so it would take exporter/monitor.py
for a module of a top-level package `exporter` and find no `mlmon.exporter` to check imports
against. This script lays the package out in build/typecheck/ as a tree of symlinks built from
that same mapping (so a new part or module needs no change here), runs mypy on it with the
settings in [tool.mypy], and prints each path as the repository's own
(build/typecheck/mlmon/exporter/monitor.py -> exporter/monitor.py), so an error points at the
file to edit.

    .venv/bin/python mk/typecheck.py [extra mypy arguments]
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from mypy import api

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: mypy itself depends on tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
TREE = Path("build/typecheck")  # relative to the repository root, which build/ holds anyway
# What a package folder holds that mypy reads: modules, stubs and the PEP 561 marker.
_LINKED_SUFFIXES = (".py", ".pyi")
_LINKED_NAMES = ("py.typed",)


def package_dirs(pyproject: Path) -> dict[str, str]:
    """The installed package name -> the repository folder it comes from (setuptools' mapping)."""
    with pyproject.open("rb") as f:
        config = tomllib.load(f)
    mapping: dict[str, str] = config["tool"]["setuptools"]["package-dir"]
    return mapping


def build_tree(root: Path, mapping: dict[str, str]) -> dict[str, str]:
    """Lay the packages out under root/TREE as symlinks; return tree folder -> source folder."""
    tree = root / TREE
    # Rebuilt each run, so a module deleted from the repository is not checked from a stale link.
    shutil.rmtree(tree, ignore_errors=True)
    folders: dict[str, str] = {}
    for package, source in sorted(mapping.items()):
        target = tree / package.replace(".", "/")
        target.mkdir(parents=True, exist_ok=True)
        for path in sorted((root / source).iterdir()):
            if path.is_file() and (path.suffix in _LINKED_SUFFIXES or path.name in _LINKED_NAMES):
                (target / path.name).symlink_to(path.resolve())
        folders[f"{TREE.as_posix()}/{package.replace('.', '/')}/"] = f"{source}/"
    return folders


def repository_paths(text: str, folders: dict[str, str]) -> str:
    """Rewrite every tree path in mypy's output to the repository path it links to."""
    # Longest first: build/typecheck/mlmon/exporter/ before build/typecheck/mlmon/.
    pattern = re.compile(
        "|".join(re.escape(folder) for folder in sorted(folders, key=len, reverse=True))
        + r"(?=[^/\s:]+\.pyi?\b)"  # only a module directly in that folder
    )
    return pattern.sub(lambda match: folders[match.group(0)], text)


def check(root: Path, argv: Sequence[str] = ()) -> tuple[int, str, str]:
    """mypy on root's packages, with root's pyproject.toml: (exit status, stdout, stderr)."""
    mapping = package_dirs(root / "pyproject.toml")
    folders = build_tree(root, mapping)
    # mypy names modules from the tree's layout: build/typecheck/mlmon is package mlmon, and
    # build/typecheck (holding no __init__.py) goes on the search path for the imports.
    targets = [(TREE / package).as_posix() for package in sorted(mapping) if "." not in package]
    previous = os.getcwd()
    os.chdir(root)  # mypy prints paths, and reads a relative cache_dir, from here
    try:
        stdout, stderr, status = api.run(
            ["--config-file", str(root / "pyproject.toml"), *argv, *targets])
    finally:
        os.chdir(previous)
    return status, repository_paths(stdout, folders), repository_paths(stderr, folders)


def main(argv: list[str]) -> int:
    """Check this repository's packages; mypy's report on stdout/stderr, its exit status."""
    status, stdout, stderr = check(ROOT, argv)
    sys.stdout.write(stdout)
    sys.stderr.write(stderr)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
