"""The Go-template pieces of alert annotations, shared by every alert family.

Alertmanager renders `description` when the alert fires: values are formatted there
(`humanizePercentage`, `printf`), and figures other than the alert's own `$value` are queried
then (`query`), so the description shows the window's sample count or the baseline it compared.
"""

from __future__ import annotations

# Where an alert on a model's series fires: its model and version.
WHERE = "{{ $labels.model }} version {{ $labels.model_version }}"
FEATURE = "Feature {{ $labels.feature }} of model " + WHERE


def pct(value: str = "$value") -> str:
    return "{{ " + value + " | humanizePercentage }}"


def num(value: str = "$value", fmt: str = "%.3f") -> str:
    return '{{ printf "' + fmt + '" ' + value + " }}"


def selector(metric: str, labels: tuple[str, ...], extra: str = "") -> str:
    """A template pipeline giving the PromQL selector of `metric` for the alert's labels."""
    matchers = ", ".join(f"{name}=%q" for name in labels) + extra
    args = " ".join(f"$labels.{name}" for name in labels)
    return f"printf `{metric}{{{matchers}}}` {args}"


def lookup(metric: str, labels: tuple[str, ...], fmt: str = "%.3f", extra: str = "") -> str:
    """The value of `metric` for the alert's labels (and the literal matchers `extra`), queried
    when the alert is rendered ("n/a" when the series is absent, e.g. a window emptied while the
    alert keeps firing)."""
    return ("{{ with " + selector(metric, labels, extra)
            + ' | query }}{{ . | first | value | printf "' + fmt + '" }}{{ else }}n/a{{ end }}')
