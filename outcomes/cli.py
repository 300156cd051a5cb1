"""`mlmon outcomes`: join a file of delayed labels to the stored predictions, count them.

    mlmon outcomes labels.csv --id-column request_id --label-column y \\
        --profile profile.json --es-url http://127.0.0.1:9200 \\
        --pushgateway http://127.0.0.1:9091

Each label is written onto its prediction's record in Elasticsearch (once: a label fed again is a
`duplicate`) and counted into the outcome series, which are pushed to the Pushgateway as this
run's own group (mlmon.outcomes.push). The file is read in chunks (`--chunk-rows`), so memory
stays bounded whatever its size. Prints one summary line; exits 2 with one line on an error
(Elasticsearch or the Pushgateway unreachable, a missing column...), after pushing what was
counted. There is no run without a Pushgateway: an outcome written to Elasticsearch but never
counted would be a `duplicate` to every later run, so it would reach no metric ever. Should the
last push fail after outcomes were written, the error line says how many and the run id: those
outcomes are on their records but in no metric (see docs/delayed-labels.md).

Shadow mode: given more than one `--profile` (one per version), each label is also joined to
the challenger's record of the same request (`<request id>.challenger`, the id the shadow code
gives it: mlmon.log_shipper.record.challenger_record_id), so one file scores both versions. A
request without a challenger record is no rejection (the challenger sheds requests under load):
the summary reports those as `without one`, and no series counts them.

Credentials: MLMON_ES_USER / MLMON_ES_PASSWORD or MLMON_ES_API_KEY, as `mlmon es-setup`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from mlmon.errors import CliError, positive_seconds
from mlmon.exporter.layout import ES_UNAVAILABLE, UNKNOWN_ID
from mlmon.exporter.profile import CLASSIFICATION, Profile
from mlmon.exporter.pushgateway import PUSHGATEWAY_ENV
from mlmon.log_shipper.cli_es import connect
from mlmon.log_shipper.es_assets import AssetError, data_stream_name
from mlmon.log_shipper.join import COUNTED, Label, OutcomeJoiner
from mlmon.log_shipper.record import challenger_record_id
from mlmon.names import OUTCOMES_PUSH_JOB
from mlmon.outcomes.labels import read_labels
from mlmon.outcomes.push import PushError, RunGroup
from mlmon.profiling.columns import ProfilingError
from mlmon.profiling.files import Progress, file_columns

DEFAULT_CHUNK_ROWS = 5_000
NO_CHALLENGER_RECORD = "without one"  # summary only: a request the challenger did not record
PUSH_INTERVAL_S = 5.0  # a long run pushes its counts this often, not only at the end


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("labels", help="CSV or Parquet file with one label per row")
    parser.add_argument("--id-column", required=True,
                        help="the request id the service logged the prediction under")
    parser.add_argument("--label-column", required=True, help="the actual value (class or number)")
    parser.add_argument("--arrived-column",
                        help="when each label arrived (Unix seconds or ISO-8601; default: now)")
    parser.add_argument("--profile", required=True, action="append",
                        help="the model's reference profile; repeat it for each model version "
                             "whose predictions the labels may belong to; with more than "
                             "one, each label also scores the challenger's record of its "
                             "request (<id>.challenger)")
    parser.add_argument("--es-url", default=os.environ.get("MLMON_ES_URL"),
                        help="Elasticsearch URL (env MLMON_ES_URL)")
    parser.add_argument("--user", default=os.environ.get("MLMON_ES_USER"),
                        help="basic-auth user (env MLMON_ES_USER); password from MLMON_ES_PASSWORD")
    parser.add_argument("--ca-certs", help="CA bundle for an https URL")
    parser.add_argument("--pushgateway", default=os.environ.get(PUSHGATEWAY_ENV),
                        help=f"Pushgateway URL (env {PUSHGATEWAY_ENV})")
    parser.add_argument("--prune-after",
                        help="delete earlier runs' groups last pushed longer ago than this, e.g. "
                             "8d (default: the longest outcome window + restart_grace of the "
                             "rules config)")
    parser.add_argument("--rules-config", help="the rules config to read the windows from "
                        "(default: the packaged alerting/config.yaml)")
    parser.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS,
                        help=f"labels read and joined at a time (default {DEFAULT_CHUNK_ROWS})")
    parser.add_argument("--run-id", help="this run's Pushgateway instance label, unique per run "
                        "(another run's group with the same id would be replaced; default: the "
                        "start time and a random suffix)")
    parser.add_argument("--timeout", type=positive_seconds, default=30.0,
                        help="request timeout, seconds")


def run(args: argparse.Namespace) -> int:
    profiles = _profiles(args.profile)
    if args.chunk_rows < 1:
        raise CliError(f"--chunk-rows {args.chunk_rows}: must be at least 1")
    if not args.es_url:
        raise CliError("no Elasticsearch URL: pass --es-url or set MLMON_ES_URL")
    if not args.pushgateway:
        raise CliError(f"no Pushgateway: pass --pushgateway URL (or set {PUSHGATEWAY_ENV}); "
                       "outcomes are counted through it, so none are written without one")
    prune_after = _prune_after(args)
    _check_columns(args)  # a typo in a column name fails before anything is contacted
    started = time.time()
    run_id = args.run_id or (time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started))
                             + "-" + uuid.uuid4().hex[:8])

    from prometheus_client import CollectorRegistry

    from mlmon.exporter.outcome_monitor import OutcomeMonitor

    registry = CollectorRegistry()
    monitors = {p.model_version: OutcomeMonitor(p, registry) for p in profiles}
    try:
        group = RunGroup(args.pushgateway, registry, run_id, timeout=args.timeout)
    except ValueError as exc:  # not a URL
        raise CliError(f"--pushgateway {exc}") from exc
    client = connect(args.es_url, user=args.user, ca_certs=args.ca_certs, timeout=args.timeout)
    main = profiles[0]
    _check_store(client, main, args)
    # Before anything is written: an outcome written but never pushed would count nowhere.
    _push(group)
    try:
        group.prune(prune_after)
    except PushError as exc:  # its line names the URL
        raise CliError(str(exc)) from exc
    joiner = OutcomeJoiner(client, main, monitors)
    # one version: no challenger to score (its records would be unknown_model)
    shadow: Counter[str] | None = Counter() if len(profiles) > 1 else None
    tally = _join_file(args, joiner, main, group, run_id, shadow)
    print(f"{_summary(args.labels, tally, shadow)}; pushed to {group.url} "
          f"(job={OUTCOMES_PUSH_JOB}, instance={run_id})")
    unjoined = tally[ES_UNAVAILABLE] + (shadow or Counter())[ES_UNAVAILABLE]
    if unjoined:
        raise CliError(f"{args.es_url}: Elasticsearch unavailable ({joiner.last_error}); "
                       f"{unjoined} labels not joined and the rest of the file not "
                       "read: run the same command again (labels already counted are "
                       "duplicates then)")
    return 0


def _profiles(paths: list[str]) -> list[Profile]:
    profiles = [Profile.load(p) for p in paths]
    models = {p.model_name for p in profiles}
    if len(models) > 1:
        raise CliError(f"--profile: profiles of different models ({', '.join(sorted(models))});"
                       " run once per model")
    versions = [p.model_version for p in profiles]
    if len(set(versions)) < len(versions):
        raise CliError(f"--profile: two profiles of the same version {versions}")
    for path, p in zip(paths, profiles, strict=True):
        if p.prediction is None:
            raise CliError(f"--profile {path}: the profile has no prediction to compare labels "
                           "with (build it with --prediction-column)")
    return profiles


def _check_columns(args: argparse.Namespace) -> None:
    wanted = [args.id_column, args.label_column, *([args.arrived_column] if args.arrived_column
                                                     else [])]
    try:
        present = file_columns(args.labels)
    except ProfilingError as exc:
        raise CliError(f"{args.labels}: {exc}") from exc
    missing = [c for c in dict.fromkeys(wanted) if c not in present]
    if missing:
        raise CliError(f"{args.labels}: no column {', '.join(map(repr, missing))} (columns: "
                       f"{', '.join(present[:20])}{', ...' if len(present) > 20 else ''})")


def _prune_after(args: argparse.Namespace) -> float:
    from mlmon.alerting import config as rules_config

    try:
        if args.prune_after:
            return float(rules_config.duration_seconds(args.prune_after))
        config = (rules_config.load(args.rules_config) if args.rules_config
                  else rules_config.load())
    except (ValueError, OSError) as exc:
        what = (f"--prune-after {args.prune_after}" if args.prune_after
                else f"rules config {args.rules_config or rules_config.CONFIG_PATH}")
        raise CliError(f"{what}: {exc}") from exc
    windows = config.outcome_windows
    return float(max(rules_config.duration_seconds(w) for w in windows)
                 + rules_config.duration_seconds(config.restart_grace))


def _check_store(client: Any, profile: Profile, args: argparse.Namespace) -> None:
    """The model's data stream exists; a warning when its mapping lacks the outcome fields."""
    from mlmon.log_shipper.cli_es import _describe

    try:
        name = data_stream_name(profile)
    except AssetError as exc:
        raise CliError(str(exc)) from exc
    try:
        found = client.indices.get(index=name, expand_wildcards="all", allow_no_indices=True)
    except AssetError as exc:
        raise CliError(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - any client error becomes one readable line
        if getattr(getattr(exc, "meta", None), "status", None) == 404:
            found = {}
        else:
            raise CliError(f"{args.es_url}: {_describe(exc, args.timeout)}") from exc
    if not found:
        raise CliError(f"{args.es_url}: no records of model {profile.model_name!r} (no data "
                       f"stream {name}): has the shipper written any?")
    newest = found[max(found, key=lambda i: -_generation(i))]
    properties = newest.get("mappings", {}).get("properties", {})
    if "outcome" not in properties:
        print(f"mlmon outcomes: warning: {name} has no mapping for the outcome fields: run "
              f"`mlmon es-setup --profile {args.profile[0]} --es-url {args.es_url}` so that "
              "Kibana can search them (outcomes are written either way)", file=sys.stderr)


def _generation(index: str) -> int:
    from mlmon.log_shipper.join import backing_order

    return backing_order(index)[0]


def _join_file(args: argparse.Namespace, joiner: OutcomeJoiner, profile: Profile,
               group: RunGroup, run_id: str, shadow: Counter[str] | None) -> Counter[str]:
    """The champion records' verdicts; the challenger records' go into `shadow` (if given)."""
    tally: Counter[str] = Counter()
    side: Counter[str] = shadow if shadow is not None else Counter()
    progress = Progress(f"joining {Path(args.labels).name}") if sys.stderr.isatty() else None
    numeric = profile.prediction is not None and profile.prediction.kind != CLASSIFICATION
    last_push = time.monotonic()
    pushed = 0  # outcomes counted in the last push that succeeded
    try:
        for chunk in read_labels(args.labels, id_column=args.id_column,
                                 label_column=args.label_column,
                                 arrived_column=args.arrived_column, numeric=numeric,
                                 chunk_rows=args.chunk_rows, progress=progress):
            tally.update(joiner.join(chunk))
            if tally[ES_UNAVAILABLE]:
                break
            if shadow is not None:
                side.update(_join_challenger(joiner, chunk))
                if side[ES_UNAVAILABLE]:
                    break
            if time.monotonic() - last_push >= PUSH_INTERVAL_S:
                _push(group, tally[COUNTED] + side[COUNTED] - pushed, run_id)
                pushed, last_push = tally[COUNTED] + side[COUNTED], time.monotonic()
        if progress:
            progress.finish()
    except ProfilingError as exc:
        raise CliError(f"{args.labels}: {exc}") from exc
    finally:
        if progress:
            progress.close()
        # what was counted, also when stopping on an error
        _push(group, tally[COUNTED] + side[COUNTED] - pushed, run_id)
    return tally


def _join_challenger(joiner: OutcomeJoiner, chunk: list[Label]) -> list[str]:
    """The verdicts of the challenger's records of `chunk`'s requests; `without one` for a
    request the challenger has no record of (not counted: it is no rejection). A label that is
    bad in itself (no actual, a bad arrival time) was counted once, on the champion's record."""
    labels = [Label(challenger_record_id(str(label.request_id)), label.actual, label.arrived_at)
              for label in chunk if label.request_id and joiner.label_reason(label) is None]
    return [NO_CHALLENGER_RECORD if verdict == UNKNOWN_ID else verdict
            for verdict in joiner.join(labels, uncounted=(UNKNOWN_ID,))]


def _push(group: RunGroup, unpushed: int = 0, run_id: str = "") -> None:
    """Push the run's counts; `unpushed`: outcomes written to Elasticsearch since the last push
    that succeeded, which a failed push leaves in no metric (the error line says so)."""
    try:
        group.push()
    except PushError as exc:
        lost = ""
        if unpushed:
            lost = (f"; {unpushed:,} outcomes written to Elasticsearch but not pushed (run "
                    f"{run_id}): they are on their records but in no metric, and a run again "
                    "finds them as duplicates (see docs/delayed-labels.md)")
        raise CliError(f"{exc}{lost}") from exc


def _summary(path: str, tally: Counter[str], shadow: Counter[str] | None = None) -> str:
    """`labels.csv: 300 labels: 290 counted, 10 unknown_id`, then with a challenger
    `; challenger records: 280 counted, 12 without one`."""
    line = f"{path}: {sum(tally.values()):,} labels: {_verdicts(tally)}"
    if shadow is not None:
        line += f"; challenger records: {_verdicts(shadow)}"
    return line


def _verdicts(tally: Counter[str]) -> str:
    parts = [f"{tally[COUNTED]:,} counted"]
    parts += [f"{n:,} {reason}" for reason, n in sorted(tally.items(), key=lambda kv: -kv[1])
              if reason != COUNTED]
    return ", ".join(parts)
