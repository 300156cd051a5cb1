"""The benchmark tables in the docs, rendered from the JSON a `make bench` run wrote.

    .venv/bin/python bench/tables.py [--from-results bench/results] [--check]

A docs page holds a table between `<!-- BEGIN GENERATED bench:NAME -->` and
`<!-- END GENERATED bench:NAME -->` (or `bench:NAME.VIEW`, one of several tables of a benchmark,
e.g. `bench:shipper.calls`); its numbers come from the committed `docs/bench/NAME.json`,
and a caption under it says how and where they were measured (the command, the machine, its
load, the versions, the date and the git revision, all recorded in the JSON by
bench/judging.py). `make generate` re-renders every table without running a benchmark, so
`make check-generated` fails when a table was edited by hand or its JSON changed alone.

`--from-results DIR` (`make bench-docs`, after `make bench`) first copies each benchmark's JSON
from DIR into docs/bench/. `--check` changes nothing and exits 1 when a page is stale.
A marker without its JSON, a JSON no page shows, or a benchmark this module cannot render is
one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
JSON_DIR = DOCS / "bench"
PREFIX = "bench_"  # the `bench` field is the script's stem; the docs name drops the prefix
BLOCK = re.compile(r"(?P<begin><!-- BEGIN GENERATED "
                   r"bench:(?P<name>[a-z0-9_]+(?:\.[a-z0-9_]+)?) -->\n)"
                   r"(?P<body>.*?)"
                   r"(?P<end><!-- END GENERATED bench:(?P=name) -->)", re.S)


class TablesError(Exception):
    """A page, a JSON file or a benchmark that cannot be rendered; one line for the user."""


def _where(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _row(*cells: object) -> str:
    return f"| {' | '.join(str(c) for c in cells)} |"


def _head(*cells: str) -> str:
    return _row(*cells) + "\n" + "|" + " --- |" * len(cells)


def _us(value: float) -> str:
    return f"{value:.2f} µs" if value < 100 else f"{value:,.0f} µs"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def targets_table(doc: dict[str, Any]) -> str:
    """One row per judged target: the same-run ratio decides, the absolute numbers are shown."""
    rows = [_head("case", "measured (absolute, this run)", "same-run ratio", "target", "result")]
    for t in doc["targets"]:
        reported = t["reported"].replace(" us", " µs") or "-"
        rows.append(_row(t["case"], reported, f"**{t['ratio']:.2f}x**", t["target"],
                         "PASS" if t["passed"] else "MISS"))
    return "\n".join(rows)


def shipper_calls_table(doc: dict[str, Any]) -> str:
    calls = [
        ('`ship()`, `fsync="interval"` (the default)', "enqueue"),
        ('`ship()`, `fsync="always"`', "spool_first_enqueue"),
        ("`PredictionLogger.record()` (observe + capture + ship; the document is built off the "
         "request thread)", "record"),
        ("observe + build + ship, all on the request thread (what `record()` did before)",
         "record_build_on_thread"),
        ("`ModelMonitor.observe()` alone", "observe"),
        ("python-json-logger `logger.info(record)` to a file (the guide's way, baseline)",
         "guide_logger_info"),
    ]
    rows = [_head("per call, in the caller's thread", "median", "p99")]
    for label, key in calls:
        p99 = doc.get(f"{key}_p99_us")
        rows.append(_row(label, _us(doc[f"{key}_median_us"]), _us(p99) if p99 else "-"))
    record = [t for t in doc["targets"] if t["case"].startswith("PredictionLogger")]
    return "\n".join(rows) + "\n\nJudged on the same-run ratio:\n\n" + targets_table(
        {"targets": record})


def shipper_throughput_table(doc: dict[str, Any]) -> str:
    rows = [_head(f"into Elasticsearch, {doc['docs_per_round']:,} documents a round",
                       f"docs/s (median of {doc['rounds']})", "rounds")]
    for label, key in (("`helpers.bulk` (baseline)", "bulk"),
                       ("`Shipper`, first `ship()` to `flush()` done", "shipper")):
        median = doc["helpers_bulk_docs_per_s" if key == "bulk" else "shipper_docs_per_s"]
        rounds = " / ".join(f"{r:,}" for r in doc[f"{key}_rounds_docs_per_s"])
        rows.append(_row(label, f"{median:,}", rounds))
    throughput = [t for t in doc["targets"] if not t["case"].startswith("PredictionLogger")]
    return "\n".join(rows) + "\n\nJudged on the same-run ratio:\n\n" + targets_table(
        {"targets": throughput})


def rules_table(doc: dict[str, Any]) -> str:
    base, full = doc["baseline"], doc["full"]

    def scenario(s: dict[str, Any]) -> str:
        return (f"{s['versions']} version{'s' if s['versions'] > 1 else ''} × "
                f"{s['replicas']} replica{'s' if s['replicas'] > 1 else ''}")

    rows = [_head("", scenario(base), scenario(full)),
            _row("mlmon_* input series", f"{base['input_series']:,}", f"{full['input_series']:,}"),
            _row("recorded series", f"{base['recorded_series']:,}",
                 f"{full['recorded_series']:,}")]
    for group in full["groups_s"]:
        rows.append(_row(group, _ms(base["groups_s"].get(group, 0.0)),
                         _ms(full["groups_s"][group])))
    rows.append(_row(f"**all groups ({len(full['groups_s'])})**", f"**{_ms(base['total_s'])}**",
                     f"**{_ms(full['total_s'])}**"))
    return "\n".join(rows)


def profiling_table(doc: dict[str, Any]) -> str:
    rows = [_head("rows", "CSV", "what", f"seconds (median of {doc.get('repeat', 1)})",
                  "peak RSS")]
    def order(name: str) -> tuple[bool, float]:  # baseline, default, then smaller budgets
        budget = re.search(r"--max-memory-mb (\S+)", name)
        return (not name.startswith("read_csv"), -float(budget[1]) if budget else -float("inf"))

    for name in sorted(doc["results"], key=order):
        r = doc["results"][name]
        what = ("`pandas.read_csv` of the whole file (baseline)" if name.startswith("read_csv")
                else f"`mlmon {name}`" + (" (default budget)" if name == "profile" else ""))
        rows.append(_row(f"{doc['rows']:,}", f"{doc['csv_mib']:.0f} MiB", what,
                         f"{r['seconds']:.1f}", f"{r['peak_rss_mib']:.0f} MiB"))
    identical = "yes" if doc["identical"] else "NO"
    return "\n".join(rows) + f"\n\nEvery profile byte-identical: {identical}."


def service_load_table(doc: dict[str, Any]) -> str:
    rows = [_head("mode", "req/s (median)", "rounds", "vs `plain`, same run",
                  "service CPU µs/request (median)", "`plain`'s CPU / this")]
    # The JSON's keys are sorted; the bench's own order (plain, the baseline, first) when it
    # recorded one, else plain first.
    modes = doc.get("modes") or sorted(doc["rps_median"], key=lambda m: (m != "plain", m))
    for mode in modes:
        rps = doc["rps_median"][mode]
        rounds = " / ".join(f"{r:,}" for r in doc["rps_rounds"][mode])
        rows.append(_row(f"`{mode}`", f"{rps:,.0f}", rounds,
                         f"{doc['ratio_vs_plain'][mode]:.2f}x",
                         f"{doc['cpu_us_per_request_median'][mode]:,.0f}",
                         f"{doc['throughput_from_cpu_vs_plain'][mode]:.2f}x"))
    errors = sum(doc["non_2xx"].values())
    return ("\n".join(rows) + f"\n\n{doc['rounds']} interleaved rounds of {doc['duration_s']:g} s "
            f"per mode, {doc['connections']} wrk connections; non-2xx answers: {errors}; "
            f"records indexed: {doc['logger_records_indexed']:,} of "
            f"{doc['logger_requests_served']:,} `logger` requests served; `logger` goal met: "
            f"{'yes' if doc['logger_goal_met'] else 'no'}.")


RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "estimation": targets_table,
    "exporter": targets_table,
    "join": targets_table,
    "outcomes": targets_table,
    "shipper.calls": shipper_calls_table,
    "shipper.throughput": shipper_throughput_table,
    "rules": rules_table,
    "profiling": profiling_table,
    "service_load": service_load_table,
    "challenger": targets_table,
}


def caption(name: str, doc: dict[str, Any]) -> str:
    """How and where the numbers were measured, all from the JSON."""
    m = doc.get("machine")
    if not m:
        raise TablesError(f"docs/bench/{name}.json has no `machine` facts: re-run `make bench` "
                          "and `make bench-docs`")
    start, end = m["load_average_start"][0], m["load_average_end"][0]
    loaded = ("loaded: more runnable tasks than cores" if max(start, end) > m["cores"]
              else "shared")
    judged = ("Absolute numbers move with the load: the same-run ratios are the measure."
              if doc.get("targets") else "Absolute numbers move with the load: compare the "
              "rows of this table (one run), not numbers from different runs.")
    return (f"*Measured by `make bench` on {m['date_utc'][:10]} at git `{m['git_revision']}` "
            f"with `{m['command']}` ({m['duration_s']:g} s); {m['cores']} cores "
            f"({m['cpu_model']}), {loaded} (1-minute load average {start:g} at the start, "
            f"{end:g} at the end); Python {m['python']}, numpy {m['numpy']}. {judged} "
            f"Rendered from "
            f"`docs/bench/{name}.json` by `make generate`.*")


def render(block: str, doc: dict[str, Any]) -> str:
    """The table of marker `block` (`NAME` or `NAME.VIEW`) and its caption."""
    name = block.split(".")[0]
    renderer = RENDERERS.get(block)
    if renderer is None:
        raise TablesError(f"docs/bench/{name}.json: no table bench:{block} "
                          f"(known: {', '.join(sorted(RENDERERS))})")
    try:
        table = renderer(doc)
    except (KeyError, TypeError, ValueError) as exc:
        raise TablesError(f"docs/bench/{name}.json: cannot render bench:{block} ({exc!r}); was "
                          "it written by this checkout's benchmark?") from exc
    return f"{table}\n\n{caption(name, doc)}\n"


def load(json_dir: Path) -> dict[str, dict[str, Any]]:
    docs = {}
    for path in sorted(json_dir.glob("*.json")):
        try:
            docs[path.stem] = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise TablesError(f"{_where(path)}: not JSON ({exc})") from exc
    return docs


def render_pages(docs_dir: Path, json_dir: Path) -> dict[Path, str]:
    """Every page whose generated blocks change, with its new text."""
    results = load(json_dir)
    shown: set[str] = set()
    changed = {}
    for page in sorted(docs_dir.rglob("*.md")):
        text = page.read_text(encoding="utf-8")

        def block(match: re.Match[str], page: Path = page) -> str:
            name = match["name"].split(".")[0]
            if name not in results:
                raise TablesError(f"{_where(page)}: bench:{match['name']} has no "
                                  f"docs/bench/{name}.json (run `make bench` and "
                                  "`make bench-docs`)")
            shown.add(name)
            return match["begin"] + render(match["name"], results[name]) + match["end"]

        new = BLOCK.sub(block, text)
        if new != text:
            changed[page] = new
    unshown = sorted(set(results) - shown)
    if unshown:
        raise TablesError(f"docs/bench/{unshown[0]}.json is shown on no page: add "
                          f"<!-- BEGIN GENERATED bench:{unshown[0]} --> ... END to one")
    return changed


def copy_results(results_dir: Path, json_dir: Path) -> list[str]:
    """Copy each benchmark's JSON (one with a `bench` field) from results_dir to json_dir."""
    copied = []
    json_dir.mkdir(parents=True, exist_ok=True)
    for path in sorted(results_dir.glob("*.json")):
        try:
            bench = json.loads(path.read_text(encoding="utf-8")).get("bench")
        except (ValueError, AttributeError):
            continue
        if isinstance(bench, str) and bench.startswith(PREFIX):
            name = bench[len(PREFIX):]
            shutil.copyfile(path, json_dir / f"{name}.json")
            copied.append(name)
    if not copied:
        raise TablesError(f"{results_dir}: no benchmark JSON (run `make bench` first)")
    return copied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from-results", type=Path, metavar="DIR",
                        help="first copy each benchmark's JSON from DIR into docs/bench/")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 when a page's tables are stale")
    parser.add_argument("--docs", type=Path, default=DOCS, help=argparse.SUPPRESS)
    parser.add_argument("--json-dir", type=Path, default=JSON_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        if args.from_results:
            copied = copy_results(args.from_results, args.json_dir)
            print(f"copied {', '.join(copied)} into {args.json_dir}")
        changed = render_pages(args.docs, args.json_dir)
    except (TablesError, OSError) as exc:
        print(f"bench/tables.py: {exc}", file=sys.stderr)
        return 1
    for page, text in changed.items():
        if args.check:
            print(f"stale: {page} (run `make generate`)", file=sys.stderr)
        else:
            page.write_text(text, encoding="utf-8")
            print(f"rendered {page}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
