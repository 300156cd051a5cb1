"""Shared builders for the mlmon dashboards: datasources, selectors, variables, panels, layout.

The dashboards (`grafana/dashboards/*.dashboard.py`) are declarative lists of rows built with
these helpers; nothing here knows about a particular dashboard. Thresholds that colour drift
come from `alerting/config.yaml`, the same file the alert rules are generated from, so a
red cell on a dashboard means what the alert means.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
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

REPO = Path(__file__).resolve().parent.parent
ALERT_CONFIG = REPO / "alerting" / "config.yaml"

PROMETHEUS = {"type": "prometheus", "uid": "mlmon-prometheus"}
ELASTICSEARCH = {"type": "elasticsearch", "uid": "mlmon-elasticsearch"}

# Every mlmon series carries model and model_version (docs/design.md section 3).
MODEL = 'model=~"$model", model_version=~"$model_version"'
FEATURE = MODEL + ', feature=~"$feature"'

GREEN, YELLOW, RED = "green", "yellow", "red"
FULL_WIDTH = 24


def alert_config(path: Path = ALERT_CONFIG) -> dict[str, Any]:
    """The rules engineer's alert configuration (windows, thresholds)."""
    return yaml.safe_load(path.read_text())


def q(expr: str, legend: str = "", ref: str = "A", instant: bool = False,
      table: bool = False) -> Target:
    """A Prometheus query; `table` asks for one row per series (instant tables)."""
    return Target(expr=" ".join(expr.split()), legendFormat=legend, refId=ref, instant=instant,
                  format="table" if table else "time_series", datasource=PROMETHEUS)


Steps = list[dict[str, Any]]


def steps(*levels: tuple[float, str]) -> Steps:
    """Threshold steps: green below the first level, then each colour from its level up.

    Plain dicts, not grafanalib's `Threshold`, which writes the base value as the string "null".
    """
    return [{"color": GREEN, "value": None}] + [{"color": c, "value": v} for v, c in levels]


def psi_steps(alerts: dict[str, Any]) -> Steps:
    """PSI colours of every dashboard: yellow from half the drift alert's floor, red from it."""
    floor = alerts["MlmonFeatureDrift"]["psi_floor"]
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
        _variable("model", "Model", "label_values(mlmon_model_info, model)", multi=False),
        _variable("model_version", "Version",
                  'label_values(mlmon_model_info{model=~"$model"}, model_version)', multi=True),
    ]
    if feature:
        out.append(_variable(
            "feature", "Feature",
            'label_values(mlmon_feature_reference_count{model=~"$model"}, feature)', multi=False))
    return Templating(list=out)


def version_annotation() -> dict[str, Any]:
    """Mark the moments a model version starts exporting (a deploy, a rollback)."""
    return {
        "name": "Model version live",
        "datasource": PROMETHEUS,
        "enable": True,
        "iconColor": "purple",
        # Per (model, model_version), not per series: a new replica or a restarted one of a
        # version already live is not a deploy.
        "expr": ('max by (model, model_version) (mlmon_model_info{model=~"$model"}) unless '
                 'max by (model, model_version) (mlmon_model_info{model=~"$model"} offset 2m)'),
        "step": "1m",
        "titleFormat": "{{model}} version {{model_version}} live",
        "tagKeys": "model,model_version",
    }


def dashboard(title: str, uid: str, description: str, panels: list[Any], feature: bool = False,
              annotations: list[dict[str, Any]] | None = None) -> Dashboard:
    from grafanalib.core import Annotations

    return Dashboard(
        title=title, uid=uid, description=description, tags=["mlmon"], panels=panels,
        templating=variables(feature), time=Time("now-1h", "now"), refresh="30s",
        timezone="utc", schemaVersion=39,
        annotations=Annotations(list=annotations or []),
    ).auto_panel_ids()


def expressions(data: dict[str, Any]) -> list[str]:
    """Every PromQL expression in a generated dashboard: panel targets and annotations."""
    out = [t["expr"] for panel in data.get("panels", []) for t in panel.get("targets", [])
           if t.get("expr") and (t.get("datasource") or {}).get("type") == "prometheus"]
    out += [a["expr"] for a in data.get("annotations", {}).get("list", []) if a.get("expr")]
    return out
