"""mk/typecheck.py (`make typecheck`): mypy checks the folders as the package they install as,
follows imports across them, and reports each error at the repository file to edit."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent

# A package laid out like mlmon: the subpackage `pkg.part` lives in a folder of its own, part/.
PYPROJECT = """
[tool.setuptools.package-dir]
"pkg" = "pkg"
"pkg.part" = "part"

[tool.mypy]
strict = true
"""
API = """from pkg.part.core import size


def doubled(text: str) -> int:
    return 2 * size(text)
"""


def _load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("typecheck_tool", REPO / "mk" / "typecheck.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _load_tool()


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """One mypy cache for the module's runs: the standard library is analysed once (~5 s)."""
    return ["--cache-dir", str(tmp_path_factory.mktemp("mypy_cache"))]


def _project(root: Path, core: str) -> Path:
    (root / "pyproject.toml").write_text(PYPROJECT)
    for folder, modules in (("pkg", {"api.py": API}), ("part", {"core.py": core})):
        (root / folder).mkdir()
        (root / folder / "__init__.py").write_text("")
        for name, text in modules.items():
            (root / folder / name).write_text(text)
    return root


def test_a_package_split_over_folders_passes_as_one(tmp_path: Path, cache: list[str]) -> None:
    root = _project(tmp_path, "def size(text: str) -> int:\n    return len(text)\n")
    status, out, err = tool.check(root, cache)
    # pkg/api.py imports pkg.part.core from part/: unresolved, it would be an import error.
    assert (status, out, err) == (0, "Success: no issues found in 4 source files\n", "")


def test_an_error_names_the_repository_file_not_the_link(tmp_path: Path,
                                                         cache: list[str]) -> None:
    root = _project(tmp_path, "def size(text: str) -> int:\n    return text\n")
    status, out, _ = tool.check(root, cache)
    assert status == 1
    assert out.splitlines()[0] == ('part/core.py:2: error: Incompatible return value type '
                                   '(got "str", expected "int")  [return-value]')
    assert "build/typecheck" not in out


def test_the_tree_follows_modules_added_and_deleted(tmp_path: Path,
                                                    cache: list[str]) -> None:
    root = _project(tmp_path, "def size(text: str) -> int:\n    return text\n")
    tool.check(root, cache)
    (root / "part" / "core.py").write_text("def size(text: str) -> int:\n    return len(text)\n")
    (root / "part" / "extra.py").write_text("x: int = 'not an int'\n")
    status, out, _ = tool.check(root, cache)
    assert (status, out.splitlines()[0]) == (1, 'part/extra.py:1: error: Incompatible types in '
                                                'assignment (expression has type "str", variable '
                                                'has type "int")  [assignment]')
    (root / "part" / "extra.py").unlink()
    assert tool.check(root, cache)[:2] == (0, "Success: no issues found in 4 source files\n")
