"""`mlmon profile`: build a reference profile from a CSV or Parquet file of training data."""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from collections.abc import Callable
from typing import Any

from mlmon.errors import CliError
from mlmon.exporter.profile import CATEGORICAL, CLASSIFICATION, NUMERIC, REGRESSION, TEXT
from mlmon.profiling.passes import DEFAULT_MAX_MEMORY_MB


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", help="training data: a .csv or .parquet file")
    parser.add_argument("-o", "--output", required=True, help="where to write the profile JSON")
    parser.add_argument("--model", required=True, help="model name")
    parser.add_argument("--model-version", required=True, help="model version")
    roles = parser.add_argument_group("columns")
    roles.add_argument("--prediction-column", help="column holding the model's predictions")
    roles.add_argument("--prediction-kind", choices=[REGRESSION, CLASSIFICATION],
                       help="override the inferred prediction kind")
    roles.add_argument("--target-column",
                       help="true labels: not a feature; gives accuracy, or MAE and RMSE")
    roles.add_argument("--score-column",
                       help="a classifier's probability of its predicted class")
    roles.add_argument("--probability-columns", type=_pairs, default={}, metavar="CLASS=COL,...",
                       help="per-class probability columns; the score is the predicted class's")
    roles.add_argument("--categorical", type=_names, default=[], metavar="A,B",
                       help="columns to profile as categorical")
    roles.add_argument("--text", type=_names, default=[], metavar="A,B",
                       help="columns to profile as text")
    roles.add_argument("--numeric", type=_names, default=[], metavar="A,B",
                       help="columns to profile as numeric")
    roles.add_argument("--exclude", type=_names, default=[], metavar="A,B",
                       help="columns to leave out (ids, timestamps)")
    opts = parser.add_argument_group("profile options")
    opts.add_argument("--bins", type=int, default=10, help="quantile bins per numeric column")
    opts.add_argument("--top-k", type=int, default=20, help="categories kept with their share")
    opts.add_argument("--vocabulary-size", type=int, default=1000, help="tokens per text column")
    opts.add_argument("--range-margin", type=float, default=0.1,
                      help="allowed range = [min, max] widened by this share of max - min")
    opts.add_argument("--max-seen-categories", type=int, default=10_000,
                      help="categories kept in a feature's seen list (the most frequent); "
                      "live values outside it are unseen")
    opts.add_argument("--allowed-range", action="append", default=[], metavar="COL=LOW:HIGH",
                      help="explicit allowed range of a numeric column (repeatable)")
    opts.add_argument("--prediction-range", metavar="LOW:HIGH",
                      help="allowed range of a regression's predictions, an end left empty when "
                      "open (0: = no negatives); default: their [min, max] widened by "
                      "--range-margin. Predictions outside count as invalid out_of_range")
    opts.add_argument("--allowed", action="append", default=[], metavar="COL=A,B,...",
                      help="explicit allowed categories of a column (repeatable)")
    opts.add_argument("--trained-at", help="training time, ISO-8601 (UTC when no zone)")
    opts.add_argument("--metric", action="append", default=[], metavar="NAME=VALUE",
                      help="a baseline evaluation metric (repeatable)")
    opts.add_argument("--chunk-rows", type=int, default=100_000, help="rows read at a time")
    opts.add_argument("--max-memory-mb", type=float, default=DEFAULT_MAX_MEMORY_MB,
                      help="numeric values kept in memory, at most; bigger files are read again "
                           "in passes that give the same profile (default %(default)g)")
    opts.add_argument("--progress", action="store_true",
                      help="draw a progress bar on stderr even when it is not a terminal")


# Keyword of profile_file / ProfileSettings -> the flag that sets it: errors name what the user
# typed (`--prediction-column`), not the keyword (`prediction_column`).
FLAGS = {
    **{key: "--" + key.replace("_", "-") for key in (
        "model_version", "prediction_column", "prediction_kind", "target_column",
        "score_column", "probability_columns", "categorical", "text", "numeric", "exclude",
        "bins", "top_k", "vocabulary_size", "range_margin", "max_seen_categories", "trained_at",
        "chunk_rows", "max_memory_mb", "prediction_range")},
    "model_name": "--model", "allowed_ranges": "--allowed-range",
    "allowed_categories": "--allowed", "baseline_metrics": "--metric",
}


def run(args: argparse.Namespace) -> int:
    from mlmon.profiling import ProfilingError, ProfilingWarning, profile_file
    from mlmon.profiling.labels import option_labels

    options: dict[str, Any] = dict(
        model_name=args.model,
        model_version=args.model_version,
        prediction_column=args.prediction_column,
        prediction_kind=args.prediction_kind,
        target_column=args.target_column,
        score_column=args.score_column,
        probability_columns=args.probability_columns,
        categorical=args.categorical,
        text=args.text,
        numeric=args.numeric,
        exclude=args.exclude,
        bins=args.bins,
        top_k=args.top_k,
        vocabulary_size=args.vocabulary_size,
        range_margin=args.range_margin,
        max_seen_categories=args.max_seen_categories,
        allowed_ranges=_option_map(args.allowed_range, "--allowed-range", _range),
        allowed_categories=_option_map(args.allowed, "--allowed", _names),
        prediction_range=_prediction_range(args.prediction_range),
        trained_at=args.trained_at,
        baseline_metrics=_option_map(args.metric, "--metric", _metric),
    )
    progress = args.progress or sys.stderr.isatty()
    caught: list[warnings.WarningMessage] = []
    try:
        with option_labels(FLAGS), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ProfilingWarning)
            profile = profile_file(args.data, chunk_rows=args.chunk_rows, progress=progress,
                                   max_memory_mb=args.max_memory_mb, **options)
    except ProfilingError as exc:
        raise CliError(str(exc)) from exc
    finally:
        for warning in caught:  # also before an error: what was found on the way
            if issubclass(warning.category, ProfilingWarning):
                print(f"mlmon profile: warning: {args.data}: {warning.message}", file=sys.stderr)
            else:
                warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                       warning.lineno)
    try:
        profile.dump(args.output)
    except OSError as exc:
        raise CliError(f"{args.output}: cannot write: {exc.strerror or exc}") from exc
    kinds = [f.kind for f in profile.features]
    counts = ", ".join(f"{kinds.count(k)} {k}" for k in (NUMERIC, CATEGORICAL, TEXT))
    prediction = profile.prediction.kind if profile.prediction else "none"
    print(
        f"wrote {args.output}: {profile.rows:,} rows, {len(kinds)} features ({counts}), "
        f"prediction {prediction}, sha {profile.sha}"
    )
    return 0


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _pairs(text: str) -> dict[str, str]:
    """CLASS=COL,CLASS=COL -> {class: column}."""
    pairs = {}
    for item in _names(text):
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise argparse.ArgumentTypeError(f"expected CLASS=COLUMN, got {item!r}")
        pairs[key] = value
    return pairs


def _range(text: str) -> tuple[float, float]:
    low, sep, high = text.partition(":")
    try:
        return float(low), float(high)
    except ValueError:
        raise ValueError(f"expected LOW:HIGH, got {text!r}") from None


def _prediction_range(text: str | None) -> tuple[float | None, float | None] | None:
    """`LOW:HIGH`, `LOW:` or `:HIGH` (open ends) -> (low, high) with None for an open end."""
    if text is None:
        return None
    low, sep, high = text.partition(":")
    try:
        if not sep:
            raise ValueError
        ends = tuple(float(end) if end.strip() else None for end in (low, high))
        if any(end is not None and not math.isfinite(end) for end in ends):
            raise ValueError
    except ValueError:
        raise CliError(f"--prediction-range: expected LOW:HIGH with finite numbers, an end "
                       f"left empty when open (e.g. 0:), got {text!r}") from None
    if ends[0] is not None and ends[1] is not None and ends[0] > ends[1]:
        raise CliError(f"--prediction-range: low {ends[0]:g} is above high {ends[1]:g} "
                       f"in {text!r}")
    return ends[0], ends[1]


def _metric(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None


def _option_map(items: list[str], option: str, parse: Callable[[str], Any]) -> dict[str, Any]:
    """Repeated COL=VALUE options as {COL: parse(VALUE)}; a malformed one is a CliError."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"{option}: expected NAME=VALUE, got {item!r}")
        try:
            out[key] = parse(value)
        except ValueError as exc:
            raise CliError(f"{option} {key}: {exc}") from exc
    return out
