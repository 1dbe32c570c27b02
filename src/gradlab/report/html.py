"""The report's HTML: its styles, figures inlined as data: URIs, tables, folds, and the page writer (one
self-contained page: styles inline, no scripts, written atomically). Used by the study report and the demo's page
(gradlab.stages.report)."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

import pandas as pd

from gradlab.core.runfolder import atomic_write_bytes

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;margin:.8em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.5em;margin:0 0 .25em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;font-size:13px;margin:.6em 0;max-width:100%}
td.l{overflow-wrap:anywhere}td.k{white-space:nowrap}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}td a{white-space:nowrap}
th{background:#f3f3f3}td.l,th.l{text-align:left}tr.solved td{background:#eaf7ea}tr.diverged td{background:#fbeaea}
th[title]{text-decoration:underline dotted;cursor:help}
.figs{display:flex;flex-wrap:wrap;gap:12px}.figs figure{margin:0;flex:0 1 calc(50% - 6px);max-width:calc(50% - 6px)}
.figs.wide figure{flex:1 1 100%;max-width:100%}
.figs img{max-width:100%;height:auto;border:1px solid #eee}figcaption{font-size:12px;color:#555}
#headline-figure{margin:.4em 0 0}#headline-figure img{display:block;width:100%;height:auto}
.headline{font-size:1em;margin:.1em 0 .3em;background:#f6f8fa;padding:.35em .8em;border-left:4px solid #4a7}
.note{font-size:12px;color:#555}nav.note{margin:0}
details{margin:.5em 0;border:1px solid #e4e4e4;padding:.3em .8em}summary{cursor:pointer;font-weight:600}
"""


def _img(path: Path, caption: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def figs(items: list[tuple[Path | None, str]], wide: bool = False) -> str:
    present = [(p, c) for p, c in items if p is not None and Path(p).is_file()]
    if not present:
        return '<p class="note">(no figures: the runs have not produced them)</p>'
    return f'<div class="figs{" wide" if wide else ""}">' + "".join(_img(p, c) for p, c in present) + "</div>"


def _cell(v: object) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.3g}"
    return html.escape(str(v))


def _td_class(left: bool, value: object) -> str:
    """A left-aligned cell wraps anywhere (long run names, paper setups), unless it is one short word (a model or a
    clip tag, which would otherwise break as "nfg_lst|m" or "norm1.|0")."""
    word = isinstance(value, str) and len(value) <= 16 and not any(ch.isspace() for ch in value)
    return ("l k" if word else "l") if left else ""


def html_table(df: pd.DataFrame, left: tuple[str, ...] = (), row_class=None, raw: tuple[str, ...] = (),
           titles: dict[str, str] | None = None, row_id=None, table_id: str | None = None) -> str:
    """An HTML table of df: `left` columns left-aligned, `raw` columns already HTML (links), `titles` a header's
    tooltip (its definition), `row_class`/`row_id` of a row."""
    def th(c: str) -> str:
        title = f' title="{html.escape(titles[c])}"' if titles and c in titles else ""
        return f'<th class="{"l" if c in left else ""}"{title}>{html.escape(str(c))}</th>'

    body = []
    for _, r in df.iterrows():
        cls = f' class="{row_class(r)}"' if row_class else ""
        rid = f' id="{row_id(r)}"' if row_id else ""
        body.append(f"<tr{rid}{cls}>" + "".join(
            f'<td class="{_td_class(c in left, r[c])}">{r[c] if c in raw else _cell(r[c])}</td>' for c in df.columns)
            + "</tr>")
    tid = f' id="{table_id}"' if table_id else ""
    return (f"<table{tid}><thead><tr>{''.join(th(c) for c in df.columns)}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def fold(summary: str, body: str) -> str:
    return f"<details><summary>{html.escape(summary)}</summary>{body}</details>"


def write_page(path: Path, title: str, heading: str, sections: list[str]) -> Path:
    """The self-contained page (styles inline, no scripts), written atomically; its path."""
    page = ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><link rel='icon' href='data:,'><style>{CSS}</style></head><body>"
            f"<h1>{html.escape(heading)}</h1>" + "\n".join(sections) + "</body></html>\n")
    atomic_write_bytes(path, page.encode())
    return path
