"""`mlmon batch`: monitor a file a batch job scored, pushing its counts to the Pushgateway.

    mlmon batch scored.parquet --profile profile.json --prediction-column pred \\
        --pushgateway http://127.0.0.1:9091 --job nightly-scoring

Reads the file (CSV or Parquet) in chunks, so memory stays bounded whatever its size, counts
every row as `BatchRun` does and pushes at the end; a run that cannot finish (a missing or
unreadable file, a named column absent) pushes its failure before the one-line error. With
`--es-url` every row is also sent to Elasticsearch as a prediction record (`event.id` from
`--id-column`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mlmon.errors import CliError, positive_seconds

DEFAULT_CHUNK_ROWS = 50_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", help="the scored rows: a .csv or .parquet file")
    parser.add_argument("--profile", required=True, help="the model's reference profile JSON")
    parser.add_argument("--prediction-column", help="column holding the model's predictions")
    parser.add_argument("--score-column",
                        help="a classifier's probability of its predicted class")
    parser.add_argument("--pushgateway", required=True, metavar="URL",
                        help="Pushgateway to push the run's counts to (e.g. http://pgw:9091)")
    parser.add_argument("--job", help="the batch job's name (default: the profile's model name); "
                        "one Pushgateway group per job, model and version")
    parser.add_argument("--es-url", metavar="URL",
                        help="also send every row to Elasticsearch as a prediction record")
    parser.add_argument("--id-column", help="column whose value is each record's event.id "
                        "(with --es-url; default: generated ids)")
    parser.add_argument("--spool-dir", help="the shipper's spool directory (with --es-url; "
                        "default: $MLMON_SPOOL_DIR/<index>)")
    parser.add_argument("--environment", default="production",
                        help="the records' service.environment (with --es-url)")
    parser.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS,
                        help="rows read at a time (default %(default)s)")
    parser.add_argument("--timeout", type=positive_seconds, default=10.0,
                        help="seconds per Pushgateway request (default %(default)s)")
    parser.add_argument("--progress", action="store_true",
                        help="draw a progress bar on stderr even when it is not a terminal")


def run(args: argparse.Namespace) -> int:
    from mlmon.batch.run import BatchRun, PushError
    from mlmon.errors import printable_url
    from mlmon.exporter.profile import Profile
    from mlmon.exporter.pushgateway import check_reachable
    from mlmon.profiling.columns import ProfilingError

    if args.chunk_rows < 1:
        raise CliError(f"--chunk-rows: must be at least 1, got {args.chunk_rows}")
    if args.id_column and not args.es_url:
        raise CliError("--id-column names the records' ids: it needs --es-url")
    profile = Profile.load(args.profile)
    url = args.pushgateway.rstrip("/")
    check_reachable(url, args.timeout)  # fail before reading a large file, not after
    try:
        run_ = BatchRun(profile, job=args.job or profile.model_name, pushgateway=url,
                        es_url=args.es_url, spool_dir=args.spool_dir,
                        environment=args.environment, timeout_s=args.timeout,
                        raise_on_push_error=True)
    except (OSError, ValueError) as exc:  # the shipper's spool directory, a blank --job
        raise CliError(str(exc)) from exc
    # From here on the run has started: whatever stops it (a missing or unreadable file, a
    # column that is not there, Ctrl-C) is a failed run of the job, pushed before we go.
    try:
        _score(args, profile, run_)
    except BaseException as exc:
        pushed = "the run's failure was pushed"
        try:
            run_.fail()
        except PushError as push:  # (BatchRun also logs it, for the exceptions re-raised below)
            pushed = str(push)
        if isinstance(exc, ProfilingError):
            raise CliError(f"{args.data}: {exc} ({pushed})") from exc
        if isinstance(exc, CliError):
            raise CliError(f"{exc} ({pushed})") from exc
        raise
    try:
        run_.succeed()
    except PushError as exc:
        raise CliError(str(exc)) from exc
    print(f"mlmon batch: {run_.rows:,} rows of {profile.model_name} version "
          f"{profile.model_version} pushed to {printable_url(url)} as job {run_.job!r}")
    return 0


def _score(args: argparse.Namespace, profile: Any, run: Any) -> None:
    """Read the file in chunks into `run` (only the columns it needs)."""
    from mlmon.exporter.profile import CATEGORICAL, CLASSIFICATION, TEXT
    from mlmon.profiling.files import Progress, file_columns, read_chunks

    available = file_columns(args.data)
    for option, name in (("--prediction-column", args.prediction_column),
                         ("--score-column", args.score_column), ("--id-column", args.id_column)):
        if name is not None and name not in available:
            raise CliError(f"{option} {name!r}: no such column in {args.data}")
    features = [f.name for f in profile.features if f.name in available]
    wanted = list(dict.fromkeys(c for c in (*features, args.prediction_column,
                                            args.score_column, args.id_column) if c))
    text_like = {f.name for f in profile.features if f.kind in (CATEGORICAL, TEXT)}
    if profile.prediction is not None and profile.prediction.kind == CLASSIFICATION:
        text_like.add(args.prediction_column)
    strings = [c for c in wanted if c in text_like or c == args.id_column]
    progress = Progress(f"mlmon batch {args.data}") if (
        args.progress or sys.stderr.isatty()) else None
    try:
        for chunk in read_chunks(args.data, args.chunk_rows, strings, progress, wanted):
            run.observe_batch(
                chunk[features],
                None if args.prediction_column is None else chunk[args.prediction_column],
                scores=None if args.score_column is None else chunk[args.score_column],
                ids=None if args.id_column is None else chunk[args.id_column])
        if progress:
            progress.finish()
    finally:
        if progress:
            progress.close()  # an unfinished bar's line ends before the error's

