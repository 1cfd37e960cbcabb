"""A report as a list of blocks, written out as Markdown (figures as PNG files beside it) and as one
self-contained HTML page (figures inlined as base64)."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")
_LEFT = ' style="text-align: left"'

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; }
figure { margin: 1.5em 0; }
figcaption { color: #555; font-size: 0.9em; }
code { background: #f3f3f3; padding: 0 0.2em; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; }
"""


@dataclass
class Document:
    title: str
    blocks: list[tuple[str, object]] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("heading", (level, text)))

    def paragraph(self, text: str) -> None:
        self.blocks.append(("paragraph", text))

    def bullets(self, items: list[str]) -> None:
        if items:
            self.blocks.append(("bullets", items))

    def table(self, headers: list[str], rows: list[list[str]], text_columns: int = 1) -> None:
        """The first ``text_columns`` columns are left-aligned, the (numeric) rest right-aligned."""
        self.blocks.append(("table", (headers, rows, text_columns)))

    def figure(self, path: Path, caption: str) -> None:
        self.blocks.append(("figure", (Path(path), caption)))

    def code(self, text: str) -> None:
        self.blocks.append(("code", text))

    # ------------------------------------------------------------------------------ Markdown
    def to_markdown(self, base: Path) -> str:
        out = [f"# {self.title}", ""]
        for kind, value in self.blocks:
            if kind == "heading":
                level, text = value
                out += ["#" * level + " " + text, ""]
            elif kind == "paragraph":
                out += [value, ""]
            elif kind == "bullets":
                out += [f"- {item}" for item in value] + [""]
            elif kind == "table":
                headers, rows, text_columns = value
                out.append("| " + " | ".join(_md_cell(h) for h in headers) + " |")
                out.append("|" + "|".join("---" if i < text_columns else "---:" for i in range(len(headers)))
                           + "|")
                out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
                out.append("")
            elif kind == "figure":
                path, caption = value
                out += [f"![{caption}]({path.relative_to(base).as_posix()})", "", f"*{caption}*", ""]
            elif kind == "code":
                out += ["```", value, "```", ""]
        return "\n".join(out)

    # ---------------------------------------------------------------------------------- HTML
    def to_html(self) -> str:
        body = [f"<h1>{html.escape(self.title)}</h1>"]
        for kind, value in self.blocks:
            if kind == "heading":
                level, text = value
                body.append(f"<h{level}>{_inline(text)}</h{level}>")
            elif kind == "paragraph":
                body.append(f"<p>{_inline(value)}</p>")
            elif kind == "bullets":
                body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in value) + "</ul>")
            elif kind == "table":
                headers, rows, text_columns = value
                head = "".join(f"<th>{_inline(h)}</th>" for h in headers)
                cells = ("".join(f'<td{_LEFT if i < text_columns else ""}>{_inline(c)}</td>'
                                 for i, c in enumerate(row)) for row in rows)
                lines = "".join(f"<tr>{c}</tr>" for c in cells)
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{lines}</tbody></table>")
            elif kind == "figure":
                path, caption = value
                data = base64.b64encode(path.read_bytes()).decode("ascii")
                body.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
                            f"<figcaption>{_inline(caption)}</figcaption></figure>")
            elif kind == "code":
                body.append(f"<pre>{html.escape(value)}</pre>")
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(self.title)}</title><style>{STYLE}</style></head>\n<body>\n"
                + "\n".join(body) + "\n</body></html>\n")


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _inline(text: str) -> str:
    escaped = html.escape(str(text))
    escaped = _CODE.sub(r"<code>\1</code>", escaped)
    return _BOLD.sub(r"<strong>\1</strong>", escaped)
