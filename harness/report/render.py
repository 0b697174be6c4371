"""Render a report (sections of text, tables and figures) to Markdown and self-contained HTML.

The same :class:`Section` list gives both outputs:

- ``report.md`` links ``figures/<name>.png``;
- ``report.html`` embeds every figure as a base64 ``data:image/png`` URI and carries its own
  CSS, so it opens anywhere without network access or the figures folder.

Files are written through :func:`harness.store.write_if_changed`: re-rendering an unchanged
report leaves every file's modification time alone.
"""
from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..store import write_if_changed


def slug(text: str) -> str:
    """A file-name-safe version of ``text`` (figure names)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


class Labels(dict):
    """Attack id -> display label (from the experiment file); unknown ids show as themselves."""

    def __missing__(self, key: str) -> str:
        return key


@dataclass
class Figure:
    """A rendered figure: ``name`` (file stem, unique in the report), PNG bytes and a caption."""

    name: str
    png: bytes
    caption: str


@dataclass
class Table:
    """A table of already formatted cells; ``rows`` are lists as long as ``header``."""

    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Section:
    """A titled block: paragraphs, tables, figures, then preformatted text (e.g. TOML).

    ``level`` is the heading level (2 = ``##``).
    """

    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    level: int = 2
    preformatted: list[str] = field(default_factory=list)


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(table: Table) -> str:
    """A GitHub-flavoured Markdown table (caption in italics above it)."""
    lines = [f"*{table.caption}*", ""] if table.caption else []
    lines.append("| " + " | ".join(_md_cell(h) for h in table.header) + " |")
    lines.append("|" + "---|" * len(table.header))
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines)


def to_markdown(title: str, sections: list[Section], figures_dir: str = "figures") -> str:
    """The report as Markdown; figures are linked as ``figures_dir/<name>.png``."""
    out = [f"# {title}", ""]
    for section in sections:
        out += ["#" * section.level + " " + section.title, ""]
        for paragraph in section.paragraphs:
            out += [paragraph, ""]
        for table in section.tables:
            out += [markdown_table(table), ""]
        for fig in section.figures:
            out += [f"![{fig.caption}]({figures_dir}/{fig.name}.png)", "", f"*Figure: {fig.caption}*", ""]
        for text in section.preformatted:
            out += ["```", text.rstrip("\n"), "```", ""]
    return "\n".join(out).rstrip() + "\n"


_CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #1b1b1b; line-height: 1.45; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: .15em; margin-top: 2em; }
div.table { overflow-x: auto; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: .92em; }
th, td { border: 1px solid #bbb; padding: .25em .6em; text-align: right; }
th { background: #eee; } td:first-child, th:first-child { text-align: left; }
caption { caption-side: top; text-align: left; font-style: italic; padding-bottom: .3em; }
figure { margin: 1em 0 2em; } figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-size: .92em; color: #333; margin-top: .3em; }
code { background: #f3f3f3; padding: 0 .2em; }
pre { background: #f6f6f6; border: 1px solid #ddd; padding: .6em; overflow-x: auto; font-size: .85em; }
"""


def _inline(text: str) -> str:
    """Escape text for HTML, turning Markdown `code` spans into <code>."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def html_table(table: Table) -> str:
    """An HTML table with an optional caption."""
    caption = f"<caption>{_inline(table.caption)}</caption>" if table.caption else ""
    head = "".join(f"<th>{_inline(h)}</th>" for h in table.header)
    body = "".join("<tr>" + "".join(f"<td>{_inline(str(c))}</td>" for c in row) + "</tr>" for row in table.rows)
    return f'<div class="table"><table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def html_figure(fig: Figure) -> str:
    """A <figure> with the PNG embedded as a base64 data URI."""
    data = base64.b64encode(fig.png).decode("ascii")
    alt = html.escape(fig.caption, quote=True)
    return (f'<figure id="{fig.name}"><img src="data:image/png;base64,{data}" alt="{alt}">'
            f"<figcaption>{_inline(fig.caption)}</figcaption></figure>")


def to_html(title: str, sections: list[Section]) -> str:
    """The report as one self-contained HTML page (inline CSS, embedded figures)."""
    body = [f"<h1>{html.escape(title)}</h1>"]
    for section in sections:
        tag = f"h{section.level}"
        body.append(f"<{tag}>{_inline(section.title)}</{tag}>")
        body += [f"<p>{_inline(p)}</p>" for p in section.paragraphs]
        body += [html_table(t) for t in section.tables]
        body += [html_figure(f) for f in section.figures]
        body += [f"<pre>{html.escape(text)}</pre>" for text in section.preformatted]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def write_report(out_dir: str | Path, title: str, sections: list[Section]) -> Path:
    """Write ``report.md``, ``report.html`` and ``figures/*.png`` into ``out_dir``.

    Returns:
        The path of report.html.
    """
    out_dir = Path(out_dir)
    names = [f.name for s in sections for f in s.figures]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"figure names must be unique in a report: {', '.join(duplicates)}")
    for section in sections:
        for fig in section.figures:
            write_if_changed(out_dir / "figures" / f"{fig.name}.png", fig.png)
    write_if_changed(out_dir / "report.md", to_markdown(title, sections).encode("utf-8"))
    write_if_changed(out_dir / "report.html", to_html(title, sections).encode("utf-8"))
    return out_dir / "report.html"
