"""MkDocs hook: lay out the package as it installs, so the API reference reads `mlmon.*`.

The source folders (exporter/, batch/, ...) install as mlmon.exporter, mlmon.batch, ... through
setuptools' package-dir (pyproject.toml). Griffe, which mkdocstrings uses, loads a package from a
directory of that name and cannot follow that mapping: an import such as
`from mlmon.exporter.pushgateway import PushError` in batch/run.py would not resolve. This hook
builds build/api/mlmon/ out of symlinks, one per package-dir entry, when MkDocs starts;
mkdocs.yml points mkdocstrings at build/api.
"""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # the docs extra installs tomli there
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
TREE = REPO / "build" / "api"


def build_tree(repo: Path = REPO, tree: Path = TREE) -> Path:
    """Symlink every package-dir entry of pyproject.toml under `tree`; returns the top package."""
    mapping = tomllib.loads((repo / "pyproject.toml").read_text(encoding="utf-8"))[
        "tool"]["setuptools"]["package-dir"]
    top = tree / "mlmon"
    top.mkdir(parents=True, exist_ok=True)
    for link in top.iterdir():  # a stale tree (a removed package) is rebuilt, not merged
        if link.is_symlink():
            link.unlink()
    for source in sorted((repo / mapping["mlmon"]).glob("*.py")):
        (top / source.name).symlink_to(source)
    for package, folder in mapping.items():
        if package != "mlmon":
            (top / package.removeprefix("mlmon.")).symlink_to(repo / folder)
    return top


def on_startup(command: str, dirty: bool) -> None:
    # before any plugin's on_config: mkdocstrings keeps only the search paths that exist then
    build_tree()
