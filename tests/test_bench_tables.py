"""bench/tables.py: the docs' benchmark tables come from committed JSON, never from a hand."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from bench import tables
from bench.judging import finish, machine_facts

REPO = Path(__file__).resolve().parents[1]


def _exporter_doc() -> dict:
    return {
        "bench": "bench_exporter",
        "machine": {"command": ".venv/bin/python bench/bench_exporter.py --out bench/results",
                    "cores": 2, "cpu_model": "Some CPU", "load_average_start": [3.5, 2, 1],
                    "load_average_end": [1.25, 2, 1], "python": "3.11.7", "numpy": "2.4.6",
                    "date_utc": "2026-11-29T08:30:00Z", "duration_s": 61.5,
                    "git_revision": "abcdef123456"},
        "targets": [{"case": "observe() one record vs naive", "ratio": 3.731, "bound": 3.5,
                     "at_least": True, "reported": "5.34 us vs naive 20.10 us",
                     "target": ">= 3.5x", "passed": True},
                    {"case": "render, time vs plain", "ratio": 1.62, "bound": 1.5,
                     "at_least": False, "reported": "", "target": "<= 1.5x", "passed": False}],
    }


def _site(tmp_path: Path, doc: dict | None = None) -> tuple[Path, Path]:
    docs, json_dir = tmp_path / "docs", tmp_path / "docs" / "bench"
    json_dir.mkdir(parents=True)
    (json_dir / "exporter.json").write_text(json.dumps(doc or _exporter_doc()))
    (docs / "speed.md").write_text("# Speed\n\nBefore.\n\n<!-- BEGIN GENERATED bench:exporter -->\n"
                                   "| typed | by hand |\n<!-- END GENERATED bench:exporter -->\n"
                                   "\nAfter.\n")
    return docs, json_dir


def _run(docs: Path, json_dir: Path, *extra: str) -> int:
    return tables.main(["--docs", str(docs), "--json-dir", str(json_dir), *extra])


def test_a_table_is_rendered_from_its_json_with_how_and_where_it_was_measured(
        tmp_path: Path) -> None:
    docs, json_dir = _site(tmp_path)
    assert _run(docs, json_dir) == 0
    text = (docs / "speed.md").read_text()
    assert text.startswith("# Speed\n\nBefore.\n\n<!-- BEGIN GENERATED bench:exporter -->\n")
    assert text.endswith("<!-- END GENERATED bench:exporter -->\n\nAfter.\n")
    assert "typed | by hand" not in text
    assert ("| observe() one record vs naive | 5.34 µs vs naive 20.10 µs | **3.73x** | >= 3.5x "
            "| PASS |") in text
    assert "| render, time vs plain | - | **1.62x** | <= 1.5x | MISS |" in text
    caption = text.split("\n\n*Measured by", 1)[1]
    for fact in ("2026-11-29", "`abcdef123456`", "`.venv/bin/python bench/bench_exporter.py "
                 "--out bench/results`", "61.5 s", "2 cores (Some CPU)",
                 "loaded: more runnable tasks than cores", "3.5 at the start, 1.25 at the end",
                 "Python 3.11.7, numpy 2.4.6", "`docs/bench/exporter.json`"):
        assert fact in caption
    # Rendering again changes nothing, and --check agrees.
    assert _run(docs, json_dir, "--check") == 0
    assert tables.render_pages(docs, json_dir) == {}


def test_check_fails_when_a_table_was_edited_by_hand_or_its_json_changed_alone(
        tmp_path: Path) -> None:
    docs, json_dir = _site(tmp_path)
    assert _run(docs, json_dir) == 0
    page = docs / "speed.md"
    rendered = page.read_text()
    page.write_text(rendered.replace("**3.73x**", "**4.00x**"))
    assert _run(docs, json_dir, "--check") == 1
    assert page.read_text() != rendered  # --check changes nothing
    assert _run(docs, json_dir) == 0 and page.read_text() == rendered
    doc = _exporter_doc()
    doc["targets"][0]["ratio"] = 3.9
    (json_dir / "exporter.json").write_text(json.dumps(doc))
    assert _run(docs, json_dir, "--check") == 1
    assert _run(docs, json_dir) == 0 and "**3.90x**" in page.read_text()


@pytest.mark.parametrize("breakage, message", [
    ("no_json", "bench:exporter has no docs/bench/exporter.json"),
    ("unshown", "docs/bench/shipper.json is shown on no page"),
    ("no_machine", "has no `machine` facts"),
    ("unknown", "no table bench:nosuch"),
])
def test_what_cannot_be_rendered_is_one_line_and_exit_status_1(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], breakage: str, message: str) -> None:
    doc = _exporter_doc()
    if breakage == "no_machine":
        del doc["machine"]
    docs, json_dir = _site(tmp_path, doc)
    before = (docs / "speed.md").read_text()
    if breakage == "no_json":
        (json_dir / "exporter.json").unlink()
    elif breakage == "unshown":
        (json_dir / "shipper.json").write_text(json.dumps(doc))
    elif breakage == "unknown":
        (json_dir / "nosuch.json").write_text(json.dumps(doc))
        (docs / "speed.md").write_text(before.replace("bench:exporter", "bench:nosuch"))
        (json_dir / "exporter.json").unlink()
    assert _run(docs, json_dir) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    if breakage != "unknown":
        assert (docs / "speed.md").read_text() == before  # nothing half-written


def test_from_results_copies_each_benchmarks_json_under_its_docs_name(tmp_path: Path) -> None:
    results = tmp_path / "results"
    finish("bench_exporter", results, "bench_exporter.json", {"x": 1}, [])
    (results / "stats-1234.json").write_text("{}")  # not a benchmark's result: left alone
    docs, json_dir = _site(tmp_path)
    assert _run(docs, json_dir, "--from-results", str(results)) == 0
    assert sorted(p.name for p in json_dir.iterdir()) == ["exporter.json"]
    copied = json.loads((json_dir / "exporter.json").read_text())
    assert copied["x"] == 1 and copied["machine"]["cores"] >= 1


def test_machine_facts_say_how_and_where(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", [str(REPO / "bench" / "bench_x.py"), "--out", "r d"])
    facts = machine_facts()
    assert facts["command"] == ".venv/bin/python bench/bench_x.py --out 'r d'"
    assert facts["cores"] >= 1 and len(facts["load_average_end"]) == 3
    assert re.fullmatch(r"\d\.\d+\.\d+", facts["python"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", facts["date_utc"])
    assert re.fullmatch(r"[0-9a-f]{12}(\+dirty)?", facts["git_revision"])


def test_the_committed_docs_show_the_committed_json() -> None:
    """What `make check-generated` checks in CI, without writing: no table edited by hand, no
    JSON changed without re-rendering, every benchmark shown on a page."""
    shown = {block.split(".")[0] for block in tables.RENDERERS}
    assert sorted(p.stem for p in tables.JSON_DIR.glob("*.json")) == sorted(shown)
    assert tables.render_pages(tables.DOCS, tables.JSON_DIR) == {}


def test_every_benchmark_has_a_renderer_and_writes_under_that_name() -> None:
    scripts = sorted(p.stem[len(tables.PREFIX):] for p in (REPO / "bench").glob("bench_*.py"))
    assert scripts == sorted({block.split(".")[0] for block in tables.RENDERERS})
