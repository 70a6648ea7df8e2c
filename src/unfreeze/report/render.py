"""The report's blocks rendered as Markdown (plots as files next to it) and as one self-contained HTML page (plots
inlined as PNG). Blocks are tuples: ("h1" | "h2" | "p" | "pre", text), ("table", header, rows),
("img", name, title, png bytes). Every user-supplied string is escaped in both."""
from __future__ import annotations

import base64
import html
import re

# What a markdown renderer would read as raw HTML: `<` opening a tag, comment or declaration, and `&` opening an
# entity. Only these are escaped (with a backslash, CommonMark's escape), so `p < 0.0001` stays plain text in
# report.md instead of a literal `p &lt; 0.0001`.
#: report.html stays under this size for 100+ labels (tested with 40; measured 100-label study in docs/report.md):
#: plots are capped at 2,000 px a side (`plots.MAX_PX`), long label lists cut to the first 30.
HTML_LIMIT_BYTES = 1_500_000

_MD_HTML = re.compile(r"<(?=[A-Za-z/!?])|&(?=#?\w+;)")


def _md_text(text: str) -> str:
    """Arm, label and column names come from user files: a label like `<script>` must be shown, never run, by a
    markdown renderer (which passes raw HTML through); plain text (`p < 0.05`, `a & b`) is left as typed."""
    return _MD_HTML.sub(lambda m: "\\" + m.group(0), str(text))


def _md_cell(text: str) -> str:
    """A table cell: escaped as `_md_text`, `|` escaped and line breaks as spaces (a newline ends the row)."""
    return " ".join(_md_text(text).replace("|", "\\|").split("\n"))


def render_markdown(blocks: list, plot_dir: str = "plots") -> str:
    out = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2"):
            out.append(("# " if kind == "h1" else "## ") + _md_text(block[1]))
        elif kind == "p":
            out.append(_md_text(block[1]))
        elif kind == "table":
            header, rows = block[1], block[2]
            out.append("\n".join(["| " + " | ".join(_md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
                                 + ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]))
        elif kind == "pre":
            out.append("```\n" + block[1].rstrip() + "\n```")
        elif kind == "img":
            out.append(f"### {_md_text(block[2])}\n\n![{_md_text(block[2])}]({plot_dir}/{block[1]}.png)")
    return "\n\n".join(out) + "\n"


# CJK fonts after the system's: a reader whose default font has no Han glyphs still gets them where installed.
CSS = ("body{font-family:system-ui,sans-serif,'Noto Sans CJK SC','Microsoft YaHei','PingFang SC';max-width:1200px;"
       "margin:2em auto;padding:0 1em;color:#222}"
       "table{border-collapse:collapse;font-size:13px;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;"
       "text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}"
       "pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:12px}img{max-width:100%;border:1px solid #eee}"
       "figure{margin:1.5em 0}figcaption{font-weight:600;margin-bottom:.4em}")


def render_html(blocks: list) -> str:
    body = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{html.escape(block[1])}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{html.escape(block[1])}</p>")
        elif kind == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block[1])
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in block[2])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif kind == "pre":
            body.append(f"<pre>{html.escape(block[1])}</pre>")
        elif kind == "img":
            data = base64.b64encode(block[3]).decode()
            body.append(f'<figure id="{block[1]}"><figcaption>{html.escape(block[2])}</figcaption>'
                        f'<img alt="{html.escape(block[2])}" src="data:image/png;base64,{data}"></figure>')
    title = html.escape(blocks[0][1]) if blocks else "unfreeze report"
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title><style>{CSS}</style></head>"
            f"<body>{''.join(body)}</body></html>\n")
