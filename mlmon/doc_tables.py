"""The docs' tables of series, recording rules and alerts, written from the code's definitions.

    python -m mlmon.doc_tables           # rewrite the tables in docs/*.md
    python -m mlmon.doc_tables --check   # exit 1 when a committed table differs

Each table sits between two markers in its page, `<!-- BEGIN GENERATED <name> ... -->` and
`<!-- END GENERATED <name> -->`; only the text between them is replaced, the prose around it is
the page's own. Series come from mlmon.names, rules and alerts from the rule generator run on
alerting/config.yaml, so a table cannot say something the code does not do.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import mlmon.names as N
from mlmon.alerting import config as cfg
from mlmon.alerting.alerts import alert_groups
from mlmon.alerting.recording import batch_groups, window_groups

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
_TYPE_TEXT = {"unknown": "untyped (counts up)"}


class MarkerError(ValueError):
    """A page lacks the markers of a table it should hold, or holds them twice."""


def begin_marker(name: str) -> str:
    return (f"<!-- BEGIN GENERATED {name}: `make generate` writes this table from the code "
            "(mlmon/doc_tables.py); do not edit -->")


def end_marker(name: str) -> str:
    return f"<!-- END GENERATED {name} -->"


def _code(names: Iterable[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _row(*cells: str) -> str:
    """A table row; an empty cell stays `| |`."""
    return "|" + "|".join(f" {c} " if c else " " for c in cells) + "|"


def _meaning(series: N.Series) -> str:
    """The docs' text, else the HELP line as a table cell (no capital, no final period)."""
    text = series.doc or series.help
    return text[0].lower() + text[1:].rstrip(".") if text[:1].isupper() else text.rstrip(".")


def series_table(series: Iterable[N.Series]) -> str:
    rows = ["| metric | type | extra labels | meaning |", "| --- | --- | --- | --- |"]
    rows += [_row(f"`{s.sample}`", _TYPE_TEXT.get(s.type, s.type), _code(s.labels),
                  _cell(_meaning(s))) for s in series]
    return "\n".join(rows)


def _first_sentence(text: str) -> str:
    match = re.match(r"(.+?\.)(\s|$)", " ".join(text.split()))
    return (match.group(1) if match else text).rstrip(".")


def _window_pattern(window: str) -> re.Pattern[str]:
    """`window` as a word of its own (`5m` in `over 5m`, `ratio5m`; not in `15m`)."""
    return re.compile(rf"(?<![0-9.]){re.escape(window)}\b")


OUTCOME_GROUPS = "mlmon.outcomes."  # realized performance: a page of its own


def recording_table(config: cfg.Config, outcomes: bool = False) -> str:
    """One row per recording rule, its name with `<w>` for the window, and the windows it
    exists for (a KS critical value: only the drift alert's window). `outcomes`: the
    realized-performance rules (docs/realized-performance.md) instead of all the others."""
    seen: dict[str, tuple[str, str, list[str]]] = {}
    for group in window_groups(config):
        if group.name.startswith(OUTCOME_GROUPS) != outcomes:
            continue
        window = next(w for w in (*config.windows, *config.outcome_windows)
                      if group.name.endswith("." + w))
        pattern = _window_pattern(window)
        for rule in group.rules:
            name = pattern.sub("<w>", rule.name)
            why = pattern.sub("`<w>`", _first_sentence(rule.why))
            area = group.name.removesuffix("." + window)
            seen.setdefault(name, (area, why, []))[2].append(window)
    rows = ["| recording rule | windows | group | meaning |", "| --- | --- | --- | --- |"]
    rows += [_row(f"`{name}`", ", ".join(windows), f"`{area}.<w>`", _cell(why))
             for name, (area, why, windows) in seen.items()]
    return "\n".join(rows)


def batch_recording_table(config: cfg.Config) -> str:
    """One row per `:batch` recording rule."""
    rows = ["| recording rule | group | meaning |", "| --- | --- | --- |"]
    rows += [_row(f"`{rule.name}`", f"`{group.name}`", _cell(_first_sentence(rule.why)))
             for group in batch_groups(config) for rule in group.rules]
    return "\n".join(rows)


_NOT_THRESHOLDS = ("window", "for", "severity", "keep_firing_for")


def _thresholds(section: dict[str, object]) -> str:
    parts = []
    for key, value in section.items():
        if key in _NOT_THRESHOLDS:
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in sorted(value.items())) or "(none)"
        elif isinstance(value, list):
            value = " / ".join(str(v) for v in value)
        parts.append(f"{key} {value}")
    return "; ".join(parts)


def alert_table(config: cfg.Config) -> str:
    rows = ["| alert | severity | window | thresholds (alerting/config.yaml) | for | summary |",
            "| --- | --- | --- | --- | --- | --- |"]
    for group in alert_groups(config):
        for rule in group.rules:
            section = config.alert(rule.name)
            keep = (f" (keeps firing {rule.keep_firing_for})"
                    if rule.keep_firing_for is not None else "")
            rows.append(_row(rule.name, rule.labels["severity"], str(section.get("window", "")),
                             _cell(_thresholds(section)), f"{rule.for_}{keep}",
                             _cell(rule.annotations["summary"])))
    return "\n".join(rows)


def tables(config: cfg.Config) -> dict[tuple[str, str], str]:
    """(page under docs/, table name) -> the table's text."""
    logger = (N.LOGGER_ERRORS, N.LOG_SINK_DROPPED)
    return {
        ("exporter-and-metrics.md", "metrics"): series_table(N.EXPORTER_SERIES),
        ("exporter-and-metrics.md", "training-metrics"): series_table(N.TRAINING_SERIES),
        ("shipper-and-elasticsearch.md", "shipper-metrics"):
            series_table(s for s in N.SHIPPER_SERIES if s not in logger),
        ("shipper-records.md", "logger-metrics"): series_table(logger),
        ("drift-and-alerts.md", "recording-rules"): recording_table(config),
        ("drift-and-alerts.md", "alerts"): alert_table(config),
        ("challenger.md", "challenger-metrics"): series_table(N.CHALLENGER_SERIES),
        ("realized-performance.md", "outcome-rules"): recording_table(config, outcomes=True),
        ("batch-jobs.md", "batch-metrics"): series_table(N.BATCH_SERIES),
        ("batch-jobs.md", "batch-rules"): batch_recording_table(config),
    }


def replace(text: str, name: str, table: str) -> str:
    """`text` with the lines between the markers of table `name` replaced by `table`."""
    begin = re.escape(f"<!-- BEGIN GENERATED {name}:") + r"[^\n]*-->\n"
    end = re.escape(end_marker(name))
    found = list(re.finditer(f"{begin}.*?{end}", text, re.S))
    if len(found) != 1:
        raise MarkerError(f"expected one `<!-- BEGIN GENERATED {name}: ... -->` ... "
                          f"`{end_marker(name)}` pair, found {len(found)}")
    block = f"{begin_marker(name)}\n{table}\n{end_marker(name)}"
    return text[:found[0].start()] + block + text[found[0].end():]


def outputs(config: cfg.Config, docs: Path = DOCS) -> dict[Path, str]:
    """Every page that holds a table, with its tables rewritten."""
    pages: dict[Path, str] = {}
    for (page, name), table in tables(config).items():
        path = docs / page
        text = pages.get(path)
        if text is None:
            text = path.read_text(encoding="utf-8")
        try:
            pages[path] = replace(text, name, table)
        except MarkerError as exc:
            raise MarkerError(f"{path}: {exc}") from exc
    return pages


def main(argv: list[str] | None = None,
         load: Callable[[], cfg.Config] = cfg.load, docs: Path = DOCS) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when a table is stale")
    args = parser.parse_args(argv)
    try:
        pages = outputs(load(), docs)
    except (MarkerError, cfg.ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stale = [path for path, text in pages.items() if path.read_text(encoding="utf-8") != text]
    for path in stale:
        if args.check:
            print(f"stale: {path} (run make generate)", file=sys.stderr)
        else:
            path.write_text(pages[path], encoding="utf-8")
            print(f"wrote {path}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
