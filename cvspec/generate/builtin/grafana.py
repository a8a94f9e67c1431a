"""The Grafana dashboard (built with grafana-foundation-sdk) and its provisioning files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from cvspec.errors import CvspecError
from cvspec.generate.api import Artifact, BuildContext
from cvspec.serve import metric_names as m

NAME = "grafana"
DATASOURCE_UID = "prometheus"
DASHBOARDS_DIR = "/var/lib/grafana/dashboards"  # where the compose file mounts the dashboards


class GrafanaGenerator:
    """Makes monitoring/grafana/: the dashboard JSON and the datasource + dashboard provisioning."""

    name = NAME
    version = "1"

    def plan(self, spec: Any, ctx: BuildContext) -> Iterator[Artifact]:
        """The dashboard, the Prometheus datasource and the file provider that loads it."""
        board = dashboard(spec, ctx)
        yield Artifact(
            f"monitoring/grafana/dashboards/{ctx.project}.json", NAME, "json", data=board
        )
        source = {
            "name": "Prometheus",
            "uid": DATASOURCE_UID,
            "type": "prometheus",
            "access": "proxy",
            "url": "http://prometheus:9090",
            "isDefault": True,
        }
        yield Artifact(
            "monitoring/grafana/provisioning/datasources/prometheus.yml",
            NAME,
            "yaml",
            data={"apiVersion": 1, "datasources": [source]},
        )
        provider = {
            "name": "cvspec",
            "folder": "cvspec",
            "type": "file",
            "allowUiUpdates": False,
            "options": {"path": DASHBOARDS_DIR, "foldersFromFilesStructure": False},
        }
        yield Artifact(
            "monitoring/grafana/provisioning/dashboards/cvspec.yml",
            NAME,
            "yaml",
            data={"apiVersion": 1, "providers": [provider]},
        )


def dashboard(spec: Any, ctx: BuildContext) -> dict[str, Any]:
    """The dashboard as plain JSON data, built offline with the SDK's typed builders."""
    try:
        from grafana_foundation_sdk.builders import dashboard as db
        from grafana_foundation_sdk.cog.encoder import JSONEncoder
        from grafana_foundation_sdk.models import dashboard as dm
    except ModuleNotFoundError:
        raise CvspecError(
            "the grafana generator needs grafana-foundation-sdk, a dependency of cvspec: reinstall "
            "cvspec (pip install cvspec) to get it back"
        ) from None
    from cvspec.serve.dashboard import dashboard_uid, panels

    ds = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
    refresh = dm.VariableRefresh.ON_TIME_RANGE_CHANGED
    board = (
        db.Dashboard(f"{ctx.project} model server")
        .uid(dashboard_uid(ctx.project))
        .description(spec.project.description or f"cvspec project {ctx.project}")
        .tags(["cvspec", ctx.project])
        .refresh("30s")
        .time("now-3h", "now")
        .timezone("browser")
        .readonly()
        .with_variable(db.DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(
            db.QueryVariable("job")
            .label("Job")
            .datasource(ds)
            .refresh(refresh)
            .query(f"label_values({m.MODEL_INFO}, job)")
            .current(dm.VariableOption(selected=True, text=ctx.project, value=ctx.project))
        )
        .with_variable(
            db.QueryVariable("instance")
            .label("Instance")
            .datasource(ds)
            .refresh(refresh)
            .query(f'label_values({m.MODEL_INFO}{{job="$job"}}, instance)')
            .multi(True)
            .include_all(True)
            .all_value(".*")
            .current(dm.VariableOption(selected=True, text="All", value="$__all"))
        )
    )
    for number, panel in enumerate(panels(spec), 1):  # ids the alerts' links name (panel_id)
        board = board.with_panel(_panel(panel, ds).id(number))
    data: dict[str, Any] = json.loads(JSONEncoder(sort_keys=True).encode(board.build()))
    return data


def _panel(spec: Any, ds: Any) -> Any:
    """One SDK panel builder from a PanelSpec."""
    from grafana_foundation_sdk.builders import bargauge, common, gauge, stat, timeseries
    from grafana_foundation_sdk.builders import dashboard as db
    from grafana_foundation_sdk.builders import prometheus as prom
    from grafana_foundation_sdk.models import common as cm
    from grafana_foundation_sdk.models import dashboard as dm

    kinds = {"timeseries": timeseries, "stat": stat, "gauge": gauge, "bargauge": bargauge}
    panel = (
        kinds[spec.kind]
        .Panel()
        .title(spec.title)
        .description(spec.description)
        .datasource(ds)
        .unit(spec.unit)
        .span(spec.width)
        .height(spec.height)
    )
    for i, (expr, legend) in enumerate(spec.targets):
        query = prom.Dataquery().expr(expr).legend_format(legend).ref_id("ABCDEFGH"[i])
        panel = panel.with_target(query.instant() if spec.instant else query.range())
    if spec.min is not None:
        panel = panel.min(spec.min)
    if spec.max is not None:
        panel = panel.max(spec.max)
    steps = [dm.Threshold(value=None, color="green")]
    steps += [dm.Threshold(value=t.value, color=t.color) for t in spec.thresholds]
    panel = panel.thresholds(db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(steps))
    if spec.kind == "timeseries" and spec.thresholds:
        style = common.GraphThresholdsStyleConfig().mode(cm.GraphTresholdsStyleMode.LINE)
        panel = panel.thresholds_style(style)
    if spec.kind == "bargauge":
        panel = panel.orientation(cm.VizOrientation.HORIZONTAL)
    if spec.kind == "stat" and spec.show != "auto":  # the options Grafana defaults, and the text
        last = common.ReduceDataOptions().calcs(["lastNotNull"])
        panel = panel.reduce_options(last).text_mode(cm.BigValueTextMode(spec.show))
    return panel
