"""Generate grafana/dashboards/*.json from the *.dashboard.py beside them.

    python grafana/generate.py           # write the JSON files
    python grafana/generate.py --check   # exit 1 when a committed file differs (CI)

Each `name.dashboard.py` defines a module-level `dashboard` (grafanalib). The JSON is written
with sorted keys and a trailing newline, so regenerating an unchanged dashboard is a no-op.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import sys
from pathlib import Path
from typing import Any

from grafanalib._gen import write_dashboard

HERE = Path(__file__).resolve().parent
DASHBOARDS = HERE / "dashboards"
SUFFIX = ".dashboard.py"


def sources(directory: Path = DASHBOARDS) -> list[Path]:
    return sorted(directory.glob("*" + SUFFIX))


def load(path: Path) -> Any:
    """Execute a dashboard definition and return its `dashboard`."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))  # so definitions can `import panels`
    spec = importlib.util.spec_from_file_location(path.name[: -len(SUFFIX)], path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "dashboard"):
        raise SystemExit(f"{path}: defines no module-level `dashboard`")
    return module.dashboard


def render(path: Path) -> str:
    out = io.StringIO()
    write_dashboard(load(path), out)
    return out.getvalue()


def target(path: Path) -> Path:
    return path.with_name(path.name[: -len(SUFFIX)] + ".json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when a JSON file is stale")
    args = parser.parse_args(argv)
    stale = []
    for path in sources():
        text, out = render(path), target(path)
        if args.check:
            if not out.exists() or out.read_text() != text:
                stale.append(out)
        elif not out.exists() or out.read_text() != text:
            out.write_text(text)
            print(f"wrote {out.relative_to(HERE.parent)}")
    for out in stale:
        print(f"stale: {out.relative_to(HERE.parent)} (run make generate-dashboards)",
              file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
