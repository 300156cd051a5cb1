"""The documentation speaks the installed package's names (`mlmon.exporter`, never `exporter`),
and states a derived number as the page that derives it does."""

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


def test_the_estimate_alerts_bound_into_the_drift_is_the_one_the_stack_derives() -> None:
    """README, estimation.md and stack.md state when MlmonEstimatedPerformanceBelowBaseline
    notifies into the drift as the bound stack.md's budget table derives: its sum at the sink,
    less the steps before the drift (the first four terms of the drift alert's sum)."""
    def text(path: str) -> str:
        return " ".join((REPO / path).read_text(encoding="utf-8").split())

    stack = text("docs/stack.md")
    terms = re.search(r"<= ((?:\d+ \+ )+\d+) = 475 s", stack)
    estimate = re.search(r"MlmonEstimatedPerformanceBelowBaseline \(`diabetes-risk`\) at the sink "
                         r"\| <= (\d+) s, [\d.]+ min \(version 1\); <= (\d+) s", stack)
    assert terms and estimate
    before = sum(int(t) for t in terms[1].split(" + ")[:4])
    into = [int(estimate[1]) - before, int(estimate[2]) - before]
    for path in ("README.md", "docs/estimation.md", "docs/stack.md"):
        said = text(path)
        assert f"at most {into[0]} s" in said and f"{into[1]} s" in said, path
        assert "about 6 minutes into the drift" not in said, path


def test_the_stack_page_counts_the_labelling_jobs_compose_runs() -> None:
    import yaml

    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    labelling = [name for name, service in compose["services"].items()
                 if "demo-labels" in (service.get("command") or [])]
    assert len(labelling) == 2, labelling  # one per demo model
    row = next(line for line in (REPO / "docs" / "stack.md").read_text().splitlines()
               if line.startswith("| demo services"))
    assert "labelling jobs (one per demo model)" in row, row
