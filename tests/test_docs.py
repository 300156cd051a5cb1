"""The documentation speaks the installed package's names: `mlmon.exporter`, never `exporter`."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# The repository's folders; the package installs them as mlmon.<folder>.
FOLDERS = ("exporter", "log_shipper", "alerting", "demo", "profiling", "outcomes")
OLD_IMPORT = re.compile(rf"^\s*(?:from|import) (?:{'|'.join(FOLDERS)})\b", re.M)
OLD_MODULE_RUN = re.compile(rf"python -m (?:{'|'.join(FOLDERS)})\b")


def test_examples_import_mlmon_names() -> None:
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        old = OLD_IMPORT.findall(text) + OLD_MODULE_RUN.findall(text)
        assert not old, f"{page.relative_to(REPO)}: {old}; write mlmon.<part>"
