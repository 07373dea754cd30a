"""One self-contained HTML page for a set of result tables and figures.

Everything is inside the file: the style, a few lines of script that sort a table by a clicked
column, and every figure as a base64 ``data:`` URI, so the page opens from disk or an e-mail
attachment with no network. Text is escaped (dataset and model names come from users' folders).
"""
from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .io import atomic_write_text

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:100rem;
     color:#1b1b1b;padding:0 1rem}
h1{font-size:1.5rem} h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
div.wide{overflow-x:auto} table{border-collapse:collapse;margin:.6rem 0;font-size:.86rem}
th,td{padding:.25rem .55rem;border-bottom:1px solid #e4e4e4;text-align:right;white-space:nowrap}
th{background:#f3f3f3;cursor:pointer;user-select:none;position:sticky;top:0}
th:first-child,td:first-child{text-align:left}
th.asc::after{content:" \\25B2"} th.desc::after{content:" \\25BC"}
tr.avg td{font-weight:600;background:#fafafa}
td.warn{color:#b00020;font-weight:600}
.figs{display:flex;flex-wrap:wrap;gap:1rem} figure{margin:0} figure img{max-width:34rem;border:1px solid #eee}
figcaption{font-size:.8rem;color:#555} .meta{font-size:.8rem;color:#444} code{font-size:.85em}
"""

# Click a header: sort that table's body rows by the column (numbers numerically, text as text);
# click again to reverse. Rows marked class="avg" stay at the bottom.
_SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function(t){
  t.querySelectorAll('th').forEach(function(th, col){
    th.addEventListener('click', function(){
      var asc = !th.classList.contains('asc');
      t.querySelectorAll('th').forEach(function(h){h.classList.remove('asc','desc');});
      th.classList.add(asc ? 'asc' : 'desc');
      var body = t.tBodies[0], rows = Array.from(body.rows);
      var fixed = rows.filter(function(r){return r.classList.contains('avg');});
      rows = rows.filter(function(r){return !r.classList.contains('avg');});
      rows.sort(function(a, b){
        var x = a.cells[col].dataset.v || a.cells[col].textContent, y = b.cells[col].dataset.v || b.cells[col].textContent;
        var nx = parseFloat(x), ny = parseFloat(y), c;
        c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return asc ? c : -c;
      });
      rows.concat(fixed).forEach(function(r){body.appendChild(r);});
    });
  });
});
"""


@dataclass
class Table:
    title: str
    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]               # cell values as shown (already formatted)
    sort_keys: Optional[Sequence[Sequence[Any]]] = None   # raw values to sort by (same shape), optional
    average_rows: Sequence[int] = ()            # row indices kept at the bottom and set in bold
    note: str = ""


@dataclass
class Page:
    title: str
    tables: List[Table] = field(default_factory=list)
    figures: List[Path] = field(default_factory=list)     # PNG files to embed
    meta: Dict[str, Any] = field(default_factory=dict)    # protocol, versions, ... shown at the top
    intro: str = ""


def _cell(value: Any, key: Any = None) -> str:
    text = html.escape("" if value is None else str(value))
    cls = ' class="warn"' if text in ("WARN", "FAILED") else ""
    data = f' data-v="{html.escape(str(key))}"' if key is not None else ""
    return f"<td{cls}{data}>{text}</td>"


def _table(t: Table) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in t.columns)
    body = []
    for i, row in enumerate(t.rows):
        keys = t.sort_keys[i] if t.sort_keys is not None else [None] * len(row)
        cls = ' class="avg"' if i in set(t.average_rows) else ""
        body.append(f"<tr{cls}>" + "".join(_cell(v, k) for v, k in zip(row, keys)) + "</tr>")
    note = f'<p class="meta">{html.escape(t.note)}</p>' if t.note else ""
    return (f"<h2>{html.escape(t.title)}</h2><div class=\"wide\"><table class=\"sortable\"><thead><tr>{head}</tr>"
            f"</thead><tbody>{''.join(body)}</tbody></table></div>{note}")


def _figure(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    name = html.escape(Path(path).name)
    return f'<figure><img alt="{name}" src="data:image/png;base64,{data}"><figcaption>{name}</figcaption></figure>'


def _meta(meta: Dict[str, Any]) -> str:
    if not meta:
        return ""
    items = "".join(f"<li><b>{html.escape(str(k))}</b>: <code>{html.escape(str(v))}</code></li>"
                    for k, v in meta.items())
    return f'<ul class="meta">{items}</ul>'


def render(page: Page) -> str:
    """The page as one HTML string (no external resource of any kind)."""
    parts = ["<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
             f"<title>{html.escape(page.title)}</title><style>{_STYLE}</style></head><body>",
             f"<h1>{html.escape(page.title)}</h1>"]
    if page.intro:
        parts.append(f"<p>{html.escape(page.intro)}</p>")
    parts.append(_meta(page.meta))
    parts += [_table(t) for t in page.tables]
    figures = [f for f in page.figures if Path(f).is_file()]
    if figures:
        parts.append("<h2>Figures</h2><div class=\"figs\">" + "".join(_figure(f) for f in figures) + "</div>")
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "".join(parts)


def write(page: Page, path: str | os.PathLike) -> Path:
    """Render ``page`` to ``path`` atomically."""
    atomic_write_text(path, render(page))
    return Path(path)
