"""Shared builders for the mlmon dashboards: datasources, selectors, variables, panels, layout.

The dashboards (`grafana/dashboards/*.dashboard.py`) are declarative lists of rows built with
these helpers; nothing here knows about a particular dashboard. Thresholds that colour drift
and the windows come from `alerting/config.yaml` through the same validated loader the alert
rules are generated with, so a red cell on a dashboard means what the alert means; series and
recording-rule names come from `mlmon.names`, as they do for the exporter and the rules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grafanalib.core import (
    BarGauge,
    Dashboard,
    GridPos,
    Stat,
    Table,
    Target,
    Template,
    Templating,
    Time,
    TimeSeries,
)

import mlmon.names as N
from mlmon.alerting.config import CONFIG_PATH, Config, load

PROMETHEUS = {"type": "prometheus", "uid": "mlmon-prometheus"}
ELASTICSEARCH = {"type": "elasticsearch", "uid": "mlmon-elasticsearch"}

# Every mlmon series carries model and model_version (docs/design.md section 3).
MODEL = ", ".join(f'{label}=~"${label}"' for label in N.MODEL_LABELS)
FEATURE = ", ".join(f'{label}=~"${label}"' for label in N.FEATURE_LABELS)

GREEN, YELLOW, RED = "green", "yellow", "red"
FULL_WIDTH = 24


def alert_config(path: Path = CONFIG_PATH) -> Config:
    """The validated rules configuration (windows, thresholds); an invalid file fails here."""
    return load(path)


def short_window(config: Config) -> str:
    """The first configured window: the short, fast one (alerting/config.yaml `windows`)."""
    return config.windows[0]


def long_window(config: Config) -> str:
    """The last configured window: the long, statistically stronger one."""
    return config.windows[-1]


def span(window: str) -> str:
    """A window as a title says it: `1h` -> `hour` ("last hour"), others as written."""
    return {"1h": "hour", "1d": "day"}.get(window, window)


def q(expr: str, legend: str = "", ref: str = "A", instant: bool = False,
      table: bool = False) -> Target:
    """A Prometheus query; `table` asks for one row per series (instant tables)."""
    return Target(expr=" ".join(expr.split()), legendFormat=legend, refId=ref, instant=instant,
                  format="table" if table else "time_series", datasource=PROMETHEUS)


def ref_id(index: int) -> str:
    """The refId of a panel's index-th query: A, B, C ..."""
    return chr(ord("A") + index)


Steps = list[dict[str, Any]]


def steps(*levels: tuple[float, str]) -> Steps:
    """Threshold steps: green below the first level, then each colour from its level up.

    Plain dicts, not grafanalib's `Threshold`, which writes the base value as the string "null".
    """
    return [{"color": GREEN, "value": None}] + [{"color": c, "value": v} for v, c in levels]


def psi_steps(config: Config) -> Steps:
    """PSI colours of every dashboard: yellow from half the drift alert's floor, red from it."""
    floor = config.alert("MlmonFeatureDrift")["psi_floor"]
    return steps((floor / 2, YELLOW), (floor, RED))


def timeseries(title: str, targets: list[Target], unit: str = "short", description: str = "",
               thresholds: Steps | None = None, soft_max: float | None = None,
               stacked: bool = False, points: bool = False) -> TimeSeries:
    extra: dict[str, Any] = {}
    if soft_max is not None:
        extra = {"fieldConfig": {"defaults": {"custom": {"axisSoftMax": soft_max}}}}
    return TimeSeries(
        title=title, description=description, dataSource=PROMETHEUS, targets=targets, unit=unit,
        thresholds=thresholds or steps(),
        thresholdsStyleMode="line" if thresholds else "off",
        stacking={"mode": "normal", "group": "A"} if stacked else {"mode": "none"},
        showPoints="always" if points else "auto", tooltipMode="multi",
        legendDisplayMode="table", legendCalcs=["lastNotNull", "max"], extraJson=extra or None,
    )


def stat(title: str, targets: list[Target], unit: str = "short", description: str = "",
         thresholds: Steps | None = None, text_mode: str = "auto") -> Stat:
    return Stat(title=title, description=description, dataSource=PROMETHEUS, targets=targets,
                format=unit, thresholds=thresholds or steps(), reduceCalc="lastNotNull",
                textMode=text_mode, graphMode="area")


def bars(title: str, targets: list[Target], unit: str = "percentunit",
         description: str = "") -> BarGauge:
    """Horizontal bars, one per series (instant): for distributions over bins or categories."""
    return BarGauge(title=title, description=description, dataSource=PROMETHEUS,
                    targets=targets, format=unit, min=0, max=1, orientation="horizontal",
                    displayMode="gradient", calc="lastNotNull", thresholds=steps())


def table(title: str, targets: list[Target], description: str = "",
          columns: dict[str, Steps] | None = None,
          hide: tuple[str, ...] = ("Time",)) -> Table:
    """An instant table: one row per label set; `columns` colours value columns by thresholds.

    Several queries are merged into one row per label set (Grafana's `merge` transformation);
    each query's value column is renamed to its refId's legend.
    """
    overrides = [
        {"matcher": {"id": "byName", "options": name},
         "properties": [
             {"id": "thresholds", "value": {"mode": "absolute", "steps": colour}},
             {"id": "custom.cellOptions", "value": {"type": "color-background"}},
             {"id": "decimals", "value": 3},
         ]}
        for name, colour in (columns or {}).items()
    ]
    renames = {f"Value #{t.refId}": t.legendFormat for t in targets if t.legendFormat}
    transformations = [
        {"id": "merge", "options": {}},
        {"id": "organize", "options": {"excludeByName": {name: True for name in hide},
                                       "renameByName": renames}},
    ]
    return Table(title=title, description=description, dataSource=PROMETHEUS, targets=targets,
                 overrides=overrides, transformations=transformations)


def layout(rows: list[list[tuple[Any, int]]], height: int = 8) -> list[Any]:
    """Place panels row by row; each item is (panel, width in 1/24ths of the screen)."""
    placed, y = [], 0
    for row in rows:
        if sum(width for _panel, width in row) > FULL_WIDTH:
            raise ValueError(f"row wider than {FULL_WIDTH}: {[p.title for p, _w in row]}")
        x = 0
        for panel, width in row:
            panel.gridPos = GridPos(h=height, w=width, x=x, y=y)
            placed.append(panel)
            x += width
        y += height
    return placed


def _variable(name: str, label: str, query: str, multi: bool) -> Template:
    return Template(
        name=name, label=label, query=query, dataSource=PROMETHEUS, refresh=2, sort=1,
        multi=multi, includeAll=multi, allValue=".*" if multi else None,
    )


def variables(feature: bool = False) -> Templating:
    """model (one), model_version (any number, all by default) and optionally feature (one)."""
    out = [
        _variable("model", "Model", f"label_values({N.MODEL_INFO.name}, model)", multi=False),
        _variable("model_version", "Version",
                  f'label_values({N.MODEL_INFO.name}{{model=~"$model"}}, model_version)',
                  multi=True),
    ]
    if feature:
        out.append(_variable(
            "feature", "Feature",
            f'label_values({N.FEATURE_REFERENCE_COUNT.name}{{model=~"$model"}}, feature)',
            multi=False))
    return Templating(list=out)


def version_annotation() -> dict[str, Any]:
    """Mark the moments a model version starts exporting (a deploy, a rollback)."""
    info = N.MODEL_INFO.name + '{model=~"$model"}'
    return {
        "name": "Model version live",
        "datasource": PROMETHEUS,
        "enable": True,
        "iconColor": "purple",
        # Per (model, model_version), not per series: a new replica or a restarted one of a
        # version already live is not a deploy.
        "expr": (f'max by (model, model_version) ({info}) unless '
                 f"max by (model, model_version) ({info} offset 2m)"),
        "step": "1m",
        "titleFormat": "{{model}} version {{model_version}} live",
        "tagKeys": "model,model_version",
    }


def dashboard(title: str, uid: str, description: str, panels: list[Any], feature: bool = False,
              annotations: list[dict[str, Any]] | None = None,
              time_from: str = "now-1h") -> Dashboard:
    """`time_from`: the default time range's start (labels arrive slowly: days, not hours)."""
    from grafanalib.core import Annotations

    return Dashboard(
        title=title, uid=uid, description=description, tags=["mlmon"], panels=panels,
        templating=variables(feature), time=Time(time_from, "now"), refresh="30s",
        timezone="utc", schemaVersion=39,
        annotations=Annotations(list=annotations or []),
    ).auto_panel_ids()


def expressions(data: dict[str, Any]) -> list[str]:
    """Every PromQL expression in a generated dashboard: panel targets and annotations."""
    out = [t["expr"] for panel in data.get("panels", []) for t in panel.get("targets", [])
           if t.get("expr") and (t.get("datasource") or {}).get("type") == "prometheus"]
    out += [a["expr"] for a in data.get("annotations", {}).get("list", []) if a.get("expr")]
    return out
