"""The docs' tables come from the code: the series the collectors really export are the ones
mlmon.names lists (so the generated metric tables are complete and exact), the committed tables
are current, and a stale or unmarked table is reported."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

import mlmon.names as N
from mlmon import doc_tables
from mlmon.alerting import config as cfg
from mlmon.exporter import ModelMonitor, Profile
from mlmon.log_shipper.metrics import ShipperCollector, ShipperStats
from tests.profiles import sample_profile_dict

MODEL_LABELS = {"model", "model_version"}


def exported(families) -> set[tuple[str, str, str, frozenset[str]]]:
    """(family name, type, help, labels beyond model and model_version) of mlmon families."""
    return {(f.name, f.type, f.documentation,
             frozenset(k for s in f.samples for k in s.labels) - MODEL_LABELS)
            for f in families if f.name.startswith("mlmon_")}


def listed(series) -> set[tuple[str, str, str, frozenset[str]]]:
    return {(s.name, s.type, s.help, frozenset(s.labels)) for s in series}


def test_the_exporter_exports_exactly_the_listed_series() -> None:
    """Regression (with a prediction in the window) and classification with a score: together
    every family of the metric table, with its type, help and labels."""
    found = set()
    for classification in (False, True):
        registry = CollectorRegistry()
        monitor = ModelMonitor.from_profile(
            Profile.from_dict(sample_profile_dict(classification)), registry,
            clock=lambda: 1e6, multiproc_directory=None)
        monitor.observe({"age": 30.0}, ("yes", 0.7) if classification else 0.5)
        found |= exported(registry.collect())
    assert found == listed(N.EXPORTER_SERIES)


def test_the_shipper_exports_exactly_the_listed_series() -> None:
    stats = ShipperStats()
    stats.last_success = 1e9
    collector = ShipperCollector(stats, lambda: 3, lambda: 10,
                                 roles=lambda: [("writer", True, 0), ("sender", False, 2)])
    logger = {N.LOGGER_ERRORS, N.LOG_SINK_DROPPED}
    assert exported(collector.collect()) == listed(s for s in N.SHIPPER_SERIES
                                                   if s not in logger)


def test_the_committed_tables_are_current() -> None:
    """What `make check-generated` checks, here so that `make test` catches it too."""
    stale = [path.name for path, text in doc_tables.outputs(cfg.load()).items()
             if path.read_text(encoding="utf-8") != text]
    assert stale == []


def test_the_metric_table_names_every_series_once() -> None:
    table = doc_tables.series_table(N.EXPORTER_SERIES)
    assert "| `mlmon_observations_total` | counter | | records observed" in table
    assert "| `mlmon_prediction_centered_sum_squares` | untyped (counts up) | |" in table
    for series in N.EXPORTER_SERIES:
        assert table.count(f"| `{series.sample}` |") == 1


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    copy = tmp_path / "docs"
    shutil.copytree(doc_tables.DOCS, copy)
    return copy


def test_check_fails_on_a_hand_edited_table_and_generate_repairs_it(docs, capsys) -> None:
    page = docs / "exporter-and-metrics.md"
    original = page.read_text(encoding="utf-8")
    page.write_text(original.replace("| `mlmon_requests_total` | counter |",
                                     "| `mlmon_requests_total` | gauge |"), encoding="utf-8")
    assert doc_tables.main(["--check"], docs=docs) == 1
    assert "exporter-and-metrics.md" in capsys.readouterr().err
    assert doc_tables.main([], docs=docs) == 0
    assert page.read_text(encoding="utf-8") == original
    assert doc_tables.main(["--check"], docs=docs) == 0


def test_a_page_without_its_markers_is_an_error_naming_it(docs, capsys) -> None:
    page = docs / "drift-and-alerts.md"
    page.write_text(page.read_text(encoding="utf-8").replace(
        doc_tables.end_marker("alerts"), ""), encoding="utf-8")
    assert doc_tables.main(["--check"], docs=docs) == 2
    err = capsys.readouterr().err
    assert "drift-and-alerts.md" in err and "alerts" in err


def test_the_rule_table_follows_the_configured_windows() -> None:
    """Windows come from the config: another window list gives other rows, none hard-coded."""
    base = cfg.load()
    other = cfg.parse(yaml.safe_load(cfg.CONFIG_PATH.read_text(encoding="utf-8").replace(
        "windows: [5m, 1h]", "windows: [5m, 1h, 6h]")))
    assert "| `model_feature:mlmon_feature_psi:<w>` | 5m, 1h |" in doc_tables.recording_table(base)
    table = doc_tables.recording_table(other)
    assert "| `model_feature:mlmon_feature_psi:<w>` | 5m, 1h, 6h |" in table
    assert "| `model_feature:mlmon_feature_ks_critical:<w>` | 1h |" in table
    rows = table.splitlines()[2:]
    assert len(rows) == len(doc_tables.recording_table(base).splitlines()[2:])
    assert all(row.split(" | ")[0].endswith("<w>`") for row in rows)


def test_a_window_is_replaced_only_as_a_word_of_its_own() -> None:
    pattern = doc_tables._window_pattern("5m")
    assert pattern.sub("<w>", "ratio5m over 5m, for 15m or 1.5m") == (
        "ratio<w> over <w>, for 15m or 1.5m")
