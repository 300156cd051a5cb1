"""PromQL building blocks shared by the recording and alert rules.

Everything here returns PromQL text. The formulas are the ones of exporter/drift.py; keep them in
step (tests compare the two on the same inputs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mlmon.names import BATCH_LABEL, COUNTERS_START

STARTED = COUNTERS_START.name
# Series pushed by batch runs carry BATCH_LABEL (the job's name); a service's never do. The
# online rules read exporter series through `online()` so a model scored both online and in
# batch keeps the two apart; the `:batch` rules read them through `pushed()`.
ONLINE = f'{BATCH_LABEL}=""'
PUSHED = f'{BATCH_LABEL}!=""'


def matching(selector: str, matcher: str) -> str:
    """`selector` (a metric name, or a name with `{...}`) with one more label matcher."""
    if selector.endswith("}"):
        head, inner = selector[:-1].split("{", 1)
        return f"{head}{{{inner}, {matcher}}}" if inner.strip() else f"{head}{{{matcher}}}"
    return f"{selector}{{{matcher}}}"


def online(selector: str) -> str:
    """A service's series of `selector`: not a batch run's."""
    return matching(selector, ONLINE)


def pushed(selector: str) -> str:
    """A batch run's series of `selector`, as pushed to the Pushgateway."""
    return matching(selector, PUSHED)


def by(labels: Sequence[str]) -> str:
    return ", ".join(labels)


def latest(metric: str, lookback: str, offset: str = "") -> str:
    """The last real sample of `metric` within `lookback`: an instant read that survives failed
    scrapes. A failed scrape writes staleness markers, which blank the instant value at once;
    a range selector skips them, so this reads the last successful scrape instead, for at most
    `lookback` (then the series is gone, as a vanished target's should be). `offset`: read
    as of that long ago."""
    shift = f" offset {offset}" if offset else ""
    return f"last_over_time({metric}[{lookback}]{shift})"


def window_count(metric: str, window: str, window_s: int, grace_s: int,
                 extra_labels: Sequence[str], counter: bool = True) -> str:
    """Per-series change of `metric` over `window`, restart-aware (docs/drift-and-alerts.md).

    Keyed on `mlmon_counters_start_timestamp_seconds`, when the target's exported counters
    last started from zero: a process's start in one process; in multi-process mode the
    creation of the profile's metadata in the directory, the same whichever worker answers
    (worker restarts do not reset the summed counters, so they do not move it).

    Each edge of the window is read at the last successful scrape at or before it, within the
    grace G (`latest`): a failed scrape leaves staleness markers, and an instant read at a
    marker finds nothing and would drop the series to the increase() estimate. So the counts
    are exact between the last successful scrapes at or before each edge.

    Only a service's series (`online`): a batch run's pushed counts are not traffic of a window.

    Branches, first match wins (`or` keeps the left side's series):
    - the same counters throughout the window (their start at the left edge is the largest in
      the window, so they did not start again): the exact difference between the last sample
      in the window and the left edge's. `last_over_time` over the window for the right edge,
      so a replica that vanished inside the window still contributes the counts it made there;
    - else, counters that started within the window (+ grace: started just before the window
      start but first scraped after it) started from zero: the whole counter. On a restart
      this counts the new process only: the old one's counts inside the window before the
      restart are not counted;
    - else (no sample within G before the window start: Prometheus or the target is newer
      than the window, or scrapes failed for longer than G there; or a restart and a
      vanishing in the same window) increase(), the estimate from what was scraped.
    """
    grace = f"{grace_s}s"
    match = f"ignoring({by(extra_labels)}) " if extra_labels else ""
    metric, started = online(metric), online(STARTED)
    same = (f"(max_over_time({started}[{window}]) == "
            f"{latest(started, grace, offset=window)})")
    recent = f"({latest(started, grace)} > time() - {window_s + grace_s})"
    fallback = "increase" if counter else "delta"  # a histogram _sum may go down
    return (
        f"((last_over_time({metric}[{window}]) - {latest(metric, grace, offset=window)})"
        f" and {match}{same})\n"
        f"or ({latest(metric, grace)} and {match}{recent})\n"
        f"or {fallback}({metric}[{window}])"
    )


def summed_window_count(metric: str, window: str, window_s: int, grace_s: int,
                        group: Sequence[str], extra_labels: Sequence[str],
                        counter: bool = True) -> str:
    """`window_count` summed over replicas, keeping `group`."""
    inner = window_count(metric, window, window_s, grace_s, extra_labels, counter)
    return f"sum by ({by(group)}) (\n{indent(inner, 2)}\n)"


def summed_pushed(metric: str, lookback: str, group: Sequence[str]) -> str:
    """A batch run's pushed counter as it is, summed keeping `group` (which includes the job):
    the counts of the latest pushed run, with no window difference (each run replaces its
    group). Read through `latest` so that a failed scrape of the Pushgateway blanks nothing."""
    return f"sum by ({by(group)}) (\n  {latest(pushed(metric), lookback)}\n)"


def reference(metric: str, group: Sequence[str], lookback: str,
              select: Callable[[str], str] = online) -> str:
    """A reference gauge, deduplicated over replicas (every replica exports the same value),
    read through `latest` so that a failed scrape does not blank the statistics built on it
    (an alert whose condition disappears restarts its `for:`). `lookback` is restart_grace,
    not the window: the statistics repeat each reference several times, and a range as long
    as the window would multiply the samples the rules read in steady state. `select`: a
    service's series (`online`) or a batch run's (`pushed`)."""
    return f"max by ({by(group)}) ({latest(select(metric), lookback)})"


def smoothed(expr: str, epsilon: float) -> str:
    return f"clamp_min({expr}, {epsilon!r})"


def psi(live: str, ref: str, group: Sequence[str], epsilon: float) -> str:
    """Population stability index: sum (p - q) ln(p / q) over smoothed shares."""
    p, q = smoothed(live, epsilon), smoothed(ref, epsilon)
    return f"sum by ({by(group)}) (\n  ({p} - {q})\n  * ln({p} / {q})\n)"


def js_distance(live: str, ref: str, group: Sequence[str], epsilon: float) -> str:
    """Jensen-Shannon distance, base 2 (in [0, 1]), over smoothed shares.

    Written per bin as p log2(2p / (p + q)) + q log2(2q / (p + q)), each term >= 0, so the sum
    never goes below zero from rounding and sqrt() stays defined.
    """
    p, q = smoothed(live, epsilon), smoothed(ref, epsilon)
    return (
        f"sqrt(0.5 * sum by ({by(group)}) (\n"
        f"    {p} * log2(2 * {p} / ({p} + {q}))\n"
        f"  + {q} * log2(2 * {q} / ({p} + {q}))\n"
        f"))"
    )


def ks_distance(live_cumulative: str, ref_cumulative: str, group: Sequence[str]) -> str:
    """Binned Kolmogorov-Smirnov distance: max |F_live - F_ref| over the bucket edges."""
    return f"max by ({by(group)}) (abs({live_cumulative} - {ref_cumulative}))"


def total_variation(live: str, ref: str, group: Sequence[str]) -> str:
    """Total-variation distance, KS's counterpart for unordered categories: 0.5 sum |p - q|."""
    return f"0.5 * sum by ({by(group)}) (abs({live} - {ref}))"


def chi_square(live: str, ref: str, count: str, group: Sequence[str], epsilon: float) -> str:
    """Pearson's chi-square of live counts against the reference: n sum (p - q)^2 / q."""
    q = smoothed(ref, epsilon)
    return f"{count}\n* sum by ({by(group)}) (({live} - {q}) ^ 2 / {q})"


def indent(text: str, spaces: int) -> str:
    pad = " " * spaces
    return "\n".join(pad + line if line else line for line in text.splitlines())
