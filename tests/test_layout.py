"""The package layout: one `mlmon` namespace, and parts that depend on each other one way only.

Each folder of the repository is a subpackage of mlmon (pyproject.toml's package-dir), so a
module has exactly one import name. These tests read the imports with ast, so they cover code
that no test happens to execute, and run the editable install from outside the checkout.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# folder -> the subpackage it is installed as
FOLDERS = {"mlmon": "mlmon", "exporter": "mlmon.exporter", "profiling": "mlmon.profiling",
           "log_shipper": "mlmon.log_shipper", "alerting": "mlmon.alerting", "demo": "mlmon.demo",
           "outcomes": "mlmon.outcomes"}
# The old top-level names: none may be imported, from anywhere in the repository.
OLD_TOP_LEVEL = ("exporter", "profiling", "log_shipper", "alerting", "demo")

# part -> the other parts it may import. Read it bottom-up: errors and names (series names
# shared by the exporter and the rule generator) are leaves; the exporter's
# runtime (and its profile model) needs nothing else; the profile builder and the shipper build
# on the profile model; the demo uses them all; alerting generates rules and imports no part.
# Only the umbrella (mlmon/__init__.py, mlmon/cli.py, mlmon/__main__.py) may import everything.
ALLOWED = {
    "mlmon.errors": set(),
    "mlmon.names": set(),
    "mlmon.exporter": {"mlmon.errors", "mlmon.names"},
    "mlmon.profiling": {"mlmon.exporter", "mlmon.errors", "mlmon.names"},
    "mlmon.log_shipper": {"mlmon.exporter", "mlmon.errors", "mlmon.names"},
    "mlmon.alerting": {"mlmon.errors", "mlmon.names"},
    "mlmon.demo": {"mlmon.exporter", "mlmon.profiling", "mlmon.log_shipper", "mlmon.errors",
                   "mlmon.names"},
    # `mlmon outcomes`: label files read like profiling's, joined by the shipper's join, windows
    # from the rules config
    "mlmon.outcomes": {"mlmon.exporter", "mlmon.log_shipper", "mlmon.profiling",
                       "mlmon.alerting", "mlmon.errors", "mlmon.names"},
    # the docs' tables: written from the names and from the rule generator's output
    "mlmon.doc_tables": {"mlmon.names", "mlmon.alerting", "mlmon.errors"},
}
UMBRELLA = {"mlmon", "mlmon.cli", "mlmon.__main__"}
# Modules that left exporter/ (now mlmon.cli, mlmon.names, mlmon.profiling.*): nor their old names.
MOVED = re.compile(r"exporter\.(?:cli|cli_profile|profiling\w*|series)")


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO)
    stem = [] if rel.stem == "__init__" else [rel.stem]
    return ".".join([FOLDERS[rel.parts[0]], *rel.parts[1:-1], *stem])


def part_of(module: str) -> str | None:
    """mlmon.exporter.monitor -> mlmon.exporter; mlmon.errors -> mlmon.errors; else None."""
    for part in ALLOWED:
        if module == part or module.startswith(part + "."):
            return part
    return None


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every absolute import, also inside functions and TYPE_CHECKING."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            # `from mlmon import exporter` imports the subpackage mlmon.exporter
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names
                         if node.module == "mlmon" and alias.name in FOLDERS)
    return found


def package_files() -> list[Path]:
    return sorted(p for folder in FOLDERS for p in (REPO / folder).rglob("*.py"))


def repo_python_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "*.py"], cwd=REPO, capture_output=True,
                            text=True, check=True).stdout.split()
    return [REPO / p for p in listed if (REPO / p).exists()]


def test_the_rules_cover_every_package_module():
    """A new folder or module must be placed in ALLOWED (or the umbrella) to be checked."""
    unplaced = [module_name(p) for p in package_files()
                if module_name(p) not in UMBRELLA and part_of(module_name(p)) is None]
    assert unplaced == []


def test_parts_import_only_the_parts_below_them():
    wrong = []
    for path in package_files():
        source = module_name(path)
        if source in UMBRELLA:
            continue
        own = part_of(source)
        for line, target in imports(path):
            if target.split(".")[0] != "mlmon":
                continue
            other = part_of(target)
            if other != own and other not in ALLOWED[own]:
                wrong.append(f"{path.relative_to(REPO)}:{line}: {source} imports {target}")
    assert wrong == []


def test_the_part_graph_has_no_cycle():
    """The rules themselves: a part reachable from itself would allow an import cycle."""
    def reachable(start: str) -> set[str]:
        seen: set[str] = set()
        todo = list(ALLOWED[start])
        while todo:
            part = todo.pop()
            if part not in seen:
                seen.add(part)
                todo.extend(ALLOWED[part])
        return seen

    assert [part for part in ALLOWED if part in reachable(part)] == []


def test_no_file_imports_an_old_top_level_name():
    """`exporter.x` beside `mlmon.exporter.x` would load the same code twice, as two modules."""
    old = [f"{path.relative_to(REPO)}:{line}: {target}" for path in repo_python_files()
           for line, target in imports(path) if target.split(".")[0] in OLD_TOP_LEVEL]
    assert old == []


def _old_module_names(text: str) -> list[str]:
    """Dotted names of real modules under their old top-level name (`-m <part>.<module>`)."""
    names = re.findall(rf"(?<![\w./-])((?:{'|'.join(OLD_TOP_LEVEL)})\.\w+)", text)
    return [n for n in names if (REPO / (n.replace(".", "/") + ".py")).exists()
            or (REPO / n.replace(".", "/") / "__init__.py").exists() or MOVED.fullmatch(n)]


def test_commands_and_strings_name_modules_under_mlmon():
    """`python -m ...` in make, compose, the Dockerfile and docs; module names in strings."""
    texts = ["Makefile", "docker-compose.yml", "demo/Dockerfile", ".ci/run", "pyproject.toml",
             "README.md", *(str(p.relative_to(REPO)) for p in (REPO / "mk").glob("*.mk")),
             *(str(p.relative_to(REPO)) for p in (REPO / "docs").rglob("*.md"))]
    # mkdocstrings lines (`::: <folder>.monitor.ModelMonitor`) name source folders on purpose:
    # griffe reads them and cannot follow setuptools' package-dir mapping.
    found = [f"{name}: {n}" for name in texts if (REPO / name).exists()
             for line in (REPO / name).read_text(encoding="utf-8").splitlines()
             if not line.lstrip().startswith("::: ") for n in _old_module_names(line)]
    for path in repo_python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.extend(f"{path.relative_to(REPO)}:{node.lineno}: {n}"
                             for n in _old_module_names(node.value)
                             if node.value.startswith(n) or f"-m {n}" in node.value)
    assert found == []


def test_old_top_level_names_are_not_loaded_in_this_session():
    assert [name for name in OLD_TOP_LEVEL if name in sys.modules] == []


def test_editable_install_maps_the_checkout_folders_and_nothing_else(tmp_path):
    """From outside the checkout (no cwd on sys.path): mlmon.* is the checkout's folders."""
    code = ("import importlib.util, json, mlmon.exporter, mlmon.profiling.sums, mlmon.cli\n"
            "print(json.dumps({'exporter': mlmon.exporter.__file__,\n"
            "  'sums': mlmon.profiling.sums.__file__, 'cli': mlmon.cli.__file__,\n"
            f"  'old': [n for n in {OLD_TOP_LEVEL!r} if importlib.util.find_spec(n)]}}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    assert found == {"exporter": str(REPO / "exporter" / "__init__.py"),
                     "sums": str(REPO / "profiling" / "sums.py"),
                     "cli": str(REPO / "mlmon" / "cli.py"), "old": []}


@pytest.mark.parametrize("name", ["ModelMonitor", "PredictionLogger", "Profile", "ProfileError"])
def test_mlmon_re_exports_the_public_api(name):
    import mlmon

    module = importlib.import_module({"PredictionLogger": "mlmon.log_shipper.facade",
                                      "ModelMonitor": "mlmon.exporter.monitor"}
                                     .get(name, "mlmon.exporter.profile"))
    assert getattr(mlmon, name) is getattr(module, name)
    assert name in mlmon.__all__


def test_mlmon_version_is_the_installed_distribution(capsys):
    from importlib.metadata import version

    from mlmon.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"mlmon {version('mlmon')}\n"
