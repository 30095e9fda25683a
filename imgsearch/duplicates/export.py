"""Files a person or a spreadsheet reads about the groups of copies: CSV, and an offline HTML contact sheet."""

from __future__ import annotations

import base64
import csv
import html
import io

from .groups import Group

THUMB_SIDE = 160
THUMB_QUALITY = 70
CSV_COLUMNS = ("group", "role", "path", "similarity", "width", "height", "size", "rule", "reason", "scale",
               "turned", "mirrored", "original_shown", "copy_covered", "evidence")


def write_csv(groups: list[Group], path: str):
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(CSV_COLUMNS)
        for number, group in enumerate(groups, start=1):
            o = group.original
            out.writerow([number, "original", o.path, "", o.width, o.height, o.size, group.rule, group.reason,
                          "", "", "", "", "", ""])
            for c in group.copies:
                m = c.member
                out.writerow([number, "copy", m.path, f"{c.similarity:.4f}", m.width, m.height, m.size, "", "",
                              *_evidence_columns(c.evidence)])


def _evidence_columns(e) -> list:
    """scale, turned, mirrored, original_shown, copy_covered and the summary; blank where the evidence has none."""
    if e is None:
        return [""] * 6
    values = (e.scale, e.turned, e.mirrored, e.original_shown, e.copy_covered)
    return [*("" if v is None else v for v in values), e.summary]


def thumbnail_uri(path: str) -> str | None:
    """A small JPEG of the file as a data: URI (the sheet works offline and moved), or None if unreadable."""
    from ..errors import ImageError
    from ..features import load_image

    try:
        image = load_image(path, min_side=THUMB_SIDE).image
    except ImageError:
        return None
    image.thumbnail((THUMB_SIDE, THUMB_SIDE))
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=THUMB_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


_STYLE = """
body{font-family:sans-serif;margin:1.5em;background:#fafafa;color:#222}
section{background:#fff;border:1px solid #ddd;border-radius:6px;margin:0 0 1.2em;padding:.8em}
h2{font-size:1.05em;margin:.1em 0 .6em} .cards{display:flex;flex-wrap:wrap;gap:.8em}
figure{margin:0;width:180px;border:2px solid #ddd;border-radius:4px;padding:6px;font-size:.78em}
figure.original{border-color:#2a8a2a;background:#f1faf1} figure img{display:block;margin:0 auto 4px;max-width:160px}
.badge{font-weight:bold} .original .badge{color:#2a8a2a} .path{word-break:break-all;color:#555}
"""


def write_html(groups: list[Group], path: str, title: str = "imgsearch duplicates"):
    esc = html.escape
    head = (f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{esc(title)}</h1>"
            f"<p>{len(groups)} group(s), {sum(len(g.copies) for g in groups)} copies.</p>")
    parts = [head]
    for number, group in enumerate(groups, start=1):
        parts.append(f"<section id='group-{number}'><h2>Group {number}: original chosen by <code>{esc(group.rule)}"
                     f"</code> ({esc(group.reason)})</h2><div class='cards'>")
        cards = [(group.original, "original", "ORIGINAL", f"{group.original.width}x{group.original.height}")]
        cards += [(c.member, "copy", f"copy, similarity {c.similarity:.3f}",
                   c.evidence.summary if c.evidence else "") for c in group.copies]
        for member, kind, badge, text in cards:
            uri = thumbnail_uri(member.path)
            img = f"<img src='{uri}' alt=''>" if uri else "<p>(file not readable)</p>"
            parts.append(f"<figure class='{kind}'>{img}<figcaption><div class='badge'>{esc(badge)}</div>"
                         f"<div class='path'>{esc(member.path)}</div><div>{esc(text)}</div></figcaption></figure>")
        parts.append("</div></section>")
    parts.append("</body></html>")
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(parts))
