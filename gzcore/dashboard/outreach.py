"""Outreach helpers for Play and Vote: the server's rooms, the QR code of a room's vote page, the
answers as vote bars (you, the room, the crowd, the model) in one block of HTML, and the image's
invert and zoom. Strings and arrays in, strings and arrays out; the pages call st."""
from __future__ import annotations

import io
from html import escape
from urllib.parse import quote, urlsplit

import numpy as np
import segno
import streamlit as st

from gzcore import rooms, tree

ROOM_COLOUR = "#9B59B6"
ZOOMS = (1.0, 1.5, 2.0, 3.0)


@st.cache_resource
def server_rooms() -> rooms.Rooms:
    """This server process's rooms (phones and presenter must reach the same process: `gz serve`
    routes a browser by cookie, so a room needs one process; see README, Outreach)."""
    return rooms.Rooms()


def vote_url(room: str, page_url: str) -> str:
    """The room's vote page beside the page at `page_url` (st.context.url: what the browser shows,
    so a proxy's host and base path are kept)."""
    parts = urlsplit(page_url or "")
    base = parts.path.rsplit("/", 1)[0]
    host = f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""  # unknown (a headless test): a path
    return f"{host}{base}/vote?room={quote(room)}"


def qr_png(url: str) -> bytes:
    """A QR code of `url` as a PNG (segno writes it itself; error correction M survives a projector's
    glare and a phone at the back of the room)."""
    out = io.BytesIO()
    segno.make(url, error="m").save(out, kind="png", scale=10, border=2)
    return out.getvalue()


def view(image: np.ndarray, invert: bool = False, zoom: float = 1.0) -> np.ndarray:
    """The image as Play shows it: its centre 1/zoom of each side, inverted (faint arms show better)."""
    if zoom > 1:
        h, w = image.shape[:2]
        dh, dw = int(h / zoom) // 2, int(w / zoom) // 2
        image = image[h // 2 - dh:h // 2 + dh, w // 2 - dw:w // 2 + dw]
    return 255 - image if invert else image


STYLE = f"""<style>
.gzv{{display:grid;grid-template-columns:repeat(auto-fill,minmax(20rem,1fr));gap:1rem 1.6rem;line-height:1.25}}
.gzv-q{{min-width:0}}
.gzv-t{{font-weight:600;margin:0 0 .35rem}}
.gzv-key{{display:flex;flex-wrap:wrap;gap:.2rem 1rem;font-size:.85rem;margin:0 0 .6rem}}
.gzv-key span::before{{content:"";display:inline-block;width:.8em;height:.8em;margin-right:.3em;
 border-radius:2px;background:var(--c)}}
.gzv-a{{margin:.35rem 0 .1rem;font-size:.9rem}}
.gzv-a.mine{{font-weight:700}}
.gzv-a.mine::after{{content:"  ← you";color:{ROOM_COLOUR}}}
.gzv-r{{display:grid;grid-template-columns:minmax(0,1fr) 5.5em;align-items:center;gap:.5em;height:.95rem}}
.gzv-b{{height:.7rem;border-radius:0 3px 3px 0;background:var(--c);min-width:1px}}
.gzv-v{{font-size:.78rem;font-variant-numeric:tabular-nums;white-space:nowrap}}
.gzv-n{{font-size:.85rem;opacity:.7;margin:.15rem 0}}
</style>"""


def _series_rows(values, counts, colour: str, k: int) -> str:
    share = float(values[k])
    label = f"{share:.0%}" + (f" ({counts[k]})" if counts is not None else "")
    return (f'<div class="gzv-r"><div class="gzv-b" style="--c:{colour};width:{share * 100:.1f}%"></div>'
            f'<span class="gzv-v">{label}</span></div>')


def vote_bars(blocks: list[dict], sources: dict[str, str]) -> str:
    """Questions as vote bars, one HTML string (st.html). Each block: `question` (a number), `mine`
    (the visitor's answer index or None) and, per source name, its conditional shares of the answers
    (None: that source wasn't asked the question) and `<name> counts` (votes, optional).
    `sources` maps a source's name to its colour, in the order drawn."""
    key = "".join(f'<span style="--c:{c}">{escape(n)}</span>' for n, c in sources.items())
    out = [STYLE, f'<div class="gzv-key">{key}</div><div class="gzv">']
    for block in blocks:
        q = tree.QUESTION_BY_NUMBER[block["question"]]
        parts = [f'<div class="gzv-q"><div class="gzv-t">Q{q.number} · {escape(q.text)}</div>']
        missing = [n for n in sources if block.get(n) is None]
        for k, a in enumerate(q.answers):
            parts.append(f'<div class="gzv-a{" mine" if block.get("mine") == k else ""}">{escape(a.long)}</div>')
            parts += [_series_rows(block[n], block.get(f"{n} counts"), c, k)
                      for n, c in sources.items() if block.get(n) is not None]
        parts += [f'<div class="gzv-n">{escape(sentence(n))}</div>' for n in missing]
        out.append("".join(parts) + "</div>")
    return "".join(out) + "</div>"


def sentence(source: str) -> str:
    """What to say where a source has no answer to a question."""
    return {"The crowd": "The crowd wasn't asked this question.",
            "The room": "Nobody in the room has answered yet."}.get(source, f"{source} wasn't asked this question.")


def shares(weighted: np.ndarray | None) -> dict[int, np.ndarray | None]:
    """Conditional shares of each question's answers from one galaxy's 37 weighted values; None for
    a question nobody reached or whose labels are unknown."""
    if weighted is None:
        return {q.number: None for q in tree.QUESTIONS}
    w = np.asarray(weighted, np.float64).reshape(tree.N_ANSWERS)
    cond = tree.to_conditional(w)[0]
    out = {}
    for q in tree.QUESTIONS:
        part = cond[tree.SLICES[q.number]]
        out[q.number] = None if np.isnan(part).any() else part
    return out
