"""The study's W&B Report as `wandb_workspaces.reports.v2` objects (the upload's side): the panels of
gradlab.report.wandb_panels' spec, placed on W&B's grid, each section's runs in its own panel grid."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gradlab.report.wandb_panels import LAYOUT, RUNSET_FILTERS, STEP, PanelSpec, SectionSpec
from gradlab.tracking.wandb_online import RUN_KINDS

REPORT_TITLE = "gradlab: vanishing and exploding gradients in recurrent networks"


REPORT_DESCRIPTION = ("Training runs, BPTT probes, checkpoint analysis and the high-dimensional geometry reference "
                      "of the gradlab study (synced from the offline wandb runs by `make wandb-report`).")


def _panel(p: PanelSpec, wr: Any) -> Any:
    title = p.title
    if p.kind == "line":
        return wr.LinePlot(title=title, x=p.x or STEP, y=list(p.keys), log_y=p.log_y or None)
    if p.kind == "histogram":
        return wr.LinePlot(title=title, y=list(p.keys))
    if p.kind == "bar":
        return wr.BarPlot(title=title, metrics=list(p.keys))
    if p.kind == "media":
        return wr.MediaBrowser(title=title, media_keys=list(p.keys), num_columns=len(p.keys))
    if p.kind == "table":
        return wr.WeavePanelSummaryTable(table_name=p.keys[0])
    if p.kind == "line_series":  # what wandb.plot.line_series logs: a table and the lineseries custom chart on it
        return wr.CustomChart(query={"summaryTable": {"tableKey": f"{p.keys[0]}_table"}},
                              chart_name="wandb/lineseries/v0",
                              chart_fields={"step": "step", "lineKey": "lineKey", "lineVal": "lineVal"},
                              chart_strings={"title": title, "xname": p.x or "x"})
    raise ValueError(f"unknown panel kind {p.kind!r}")


def _place(panels: list[tuple[PanelSpec, Any]], wr: Any) -> list[Any]:
    """Rows of 24 grid units, left to right, in the spec's order."""
    x = y = row_h = 0
    placed = []
    for spec, panel in panels:
        w, h = LAYOUT[spec.kind]
        if x + w > 24:
            x, y, row_h = 0, y + row_h, 0
        panel.layout = wr.Layout(x=x, y=y, w=w, h=h)
        placed.append(panel)
        x, row_h = x + w, max(row_h, h)
    return placed


def build_blocks(spec: Iterable[SectionSpec], project: str, entity: str, sources: Iterable[str] | None = None
                 ) -> list[Any]:
    """The report's blocks: a table of contents, then per section an H1, a paragraph and a panel grid per source.

    `sources`: the run kinds that exist (sections and grids of other kinds are left out); None: all.
    """
    import wandb_workspaces.reports.v2 as wr

    wanted = set(RUN_KINDS if sources is None else sources)
    blocks: list[Any] = [wr.TableOfContents()]
    for section in spec:
        by_source: dict[str, list[tuple[PanelSpec, Any]]] = {}
        for p in section.panels:
            if p.source in wanted:
                by_source.setdefault(p.source, []).append((p, _panel(p, wr)))
        if not by_source:
            continue
        blocks += [wr.H1(section.title), wr.P(section.text)]
        for source, panels in by_source.items():
            runset = wr.Runset(entity=entity, project=project, name=f"{source} runs",
                               filters=RUNSET_FILTERS.get(source, ""))
            blocks.append(wr.PanelGrid(runsets=[runset], panels=_place(panels, wr)))
    return blocks


def build_report(spec: Iterable[SectionSpec], project: str, entity: str, sources: Iterable[str] | None = None,
                 title: str = REPORT_TITLE, description: str = REPORT_DESCRIPTION) -> Any:
    """The `wandb_workspaces.reports.v2.Report` of the spec (constructed offline; `save_report` uploads it)."""
    import wandb_workspaces.reports.v2 as wr

    return wr.Report(project=project, entity=entity, title=title, description=description,
                     blocks=build_blocks(spec, project, entity, sources), width="fluid")


def save_report(report: Any) -> str:
    """Upload the report (network: W&B's GraphQL API); returns its URL."""
    report.save()
    return str(report.url)


def default_entity() -> str:
    """The logged-in user's default entity (network)."""
    import wandb

    entity = wandb.Api().default_entity
    if not entity:
        raise RuntimeError("W&B returned no default entity for this API key; pass --entity")
    return str(entity)
