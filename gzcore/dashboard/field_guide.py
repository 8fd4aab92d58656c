"""Play's field guide, as Galaxy Zoo's: for each answer of a question its icon, what to look for in
a sentence or two, and the loaded data's galaxies the crowd was surest of; and how to play. Data
and strings in, one block of HTML out (st.html); the pages call st."""
from __future__ import annotations

import contextlib
from html import escape

import pandas as pd

from gzcore import catalog, data, tree
from gzcore.dashboard import icons, pictures

HOW_TO_PLAY = """**How to play**
1. Look at the galaxy. *Invert* and *Zoom* bring out faint arms and rings.
2. Answer the question: each answer has our drawing of it and, where the data hold one, the real
   galaxy the volunteers were surest of. Not sure? Open the **Field guide** under the answers.
3. Your answer picks the next question, as on Galaxy Zoo. At the end, see how you compare with the
   crowd of volunteers and with our model."""

# what to look for, per answer: plain words, one or two sentences
GUIDE: dict[str, str] = {
    "Class1.1": "Light that fades smoothly outwards from a bright centre, with no arms, bar, lanes or clumps. "
                "Round or stretched, it is still smooth.",
    "Class1.2": "Any structure at all: spiral arms, a bar, a ring, clumps, or a thin disk seen edge-on.",
    "Class1.3": "Not a galaxy: a star (a sharp point, often with spikes), a satellite trail, or a picture "
                "spoiled by a bright neighbour or bad pixels.",
    "Class2.1": "A thin, flat streak of light, often with a bulge in its middle: a disk seen from the side.",
    "Class2.2": "You look down onto the disk rather than along its edge, even if it is tilted a little.",
    "Class3.1": "A straight bright bar through the centre, often with spiral arms starting from its ends.",
    "Class3.2": "The centre is a round or slightly oval bulge, with no straight bar through it.",
    "Class4.1": "Arms curving out from the centre, even faint or patchy ones.",
    "Class4.2": "A disk with nothing winding out from its centre: smooth, or with a ring or a lens.",
    "Class5.1": "No bright centre: the middle is about as bright as the rest of the disk.",
    "Class5.2": "A small centre, only a little brighter than the disk around it.",
    "Class5.3": "A clear, bright central bulge, but the disk is still most of the galaxy.",
    "Class5.4": "The bulge is most of what you see: a big bright centre in a faint disk.",
    "Class6.1": "Something unusual: a ring, a lensed arc, a merger, a dust lane, a disturbed or irregular "
                "shape, or anything else that catches your eye.",
    "Class6.2": "Nothing out of the ordinary beyond the galaxy's shape, arms and bulge.",
    "Class7.1": "As round as a coin: the same width in every direction.",
    "Class7.2": "An oval: clearly longer one way than the other, but not thin.",
    "Class7.3": "Long and thin like a cigar, several times longer than it is wide.",
    "Class8.1": "A ring of light around the centre, with darker space between the ring and the bulge.",
    "Class8.2": "Thin arcs curving around a galaxy: the light of a more distant one, bent by the nearer "
                "one's gravity.",
    "Class8.3": "Pulled out of shape, usually by a neighbour: lopsided, with plumes, shells or a long tail.",
    "Class8.4": "No clear shape: patchy clumps of light, with no symmetry, centre or disk.",
    "Class8.5": "Something odd that none of the other answers describes.",
    "Class8.6": "Two or more galaxies colliding: touching or overlapping, often joined by bridges or tails.",
    "Class8.7": "A dark band of dust across the galaxy, most often along an edge-on disk, splitting it in two.",
    "Class9.1": "The middle of the edge-on disk swells into a round or oval bulge.",
    "Class9.2": "The bulge has square corners, like a box or a peanut sitting on the disk.",
    "Class9.3": "The disk stays thin right through its centre: a flat needle of light.",
    "Class10.1": "Arms wrapped close around the centre, like a coiled spring, circling it before they fade.",
    "Class10.2": "Between tight and loose: arms curve clearly around, with open gaps between them.",
    "Class10.3": "Arms flung wide and open, turning less than half a circle before they fade.",
    "Class11.1": "A single arm winding out from the centre. Count arms where they leave the centre.",
    "Class11.2": "Two arms, usually from opposite sides of the centre: the classic spiral.",
    "Class11.3": "Three arms, evenly spaced or not.",
    "Class11.4": "Four arms. Follow each one back to the centre so you count none twice.",
    "Class11.5": "Many arms, or lots of short pieces of arms, like a fleecy pinwheel.",
    "Class11.6": "You see arms but cannot count them: too faint, too small or too tangled. A fine answer.",
}
THUMB = 100  # px of an example galaxy

STYLE = """<style>
.gzf{display:flex;flex-direction:column;gap:.9rem;line-height:1.35}
.gzf-a{display:grid;grid-template-columns:3.6rem minmax(0,1fr);gap:.35rem .8rem;align-items:start}
.gzf-a>img{width:3.6rem;height:3.6rem;grid-row:span 2;border-radius:.5rem}
.gzf-t{font-size:.92rem}
.gzf-t b{display:block;font-size:1rem}
.gzf-x{display:flex;flex-wrap:wrap;gap:.35rem;align-items:center}
.gzf-x img{width:4.6rem;height:4.6rem;border-radius:.35rem;object-fit:cover}
.gzf-x span{font-size:.78rem;opacity:.65}
</style>"""

Example = tuple[str, str]  # a galaxy's picture (a data URI) and its caption


def examples(table: pd.DataFrame, paths, question: tree.Question, k: int = 3) -> dict[str, list[Example]]:
    """Small pictures of the `k` galaxies the crowd was surest of for each answer (catalog.surest),
    by answer column; a file that cannot be decoded is left out."""
    out = {}
    for a in question.answers:
        shown = []
        for row in catalog.surest(table, a.column, k):
            with contextlib.suppress(data.DataError):  # an undecodable file is no example
                shown.append((pictures.jpeg_uri(paths[row], THUMB), f"Galaxy {table.GalaxyID.iat[row]}"))
        out[a.column] = shown
    return out


def panel(question: tree.Question, found: dict[str, list[Example]] | None = None) -> str:
    """The field guide to one question (st.html): each answer's icon, name and what to look for,
    then its example galaxies when `found` (see `examples`) is given."""
    rows = []
    for a in question.answers:
        row = (f'<div class="gzf-a"><img src="{icons.uri(a.column)}" alt="">'
               f'<div class="gzf-t"><b>{escape(a.long)}</b>{escape(GUIDE[a.column])}</div>')
        if found is not None:
            shots = "".join(f'<img src="{src}" alt="{escape(caption)}" title="{escape(caption)}">'
                            for src, caption in found[a.column])
            row += f'<div class="gzf-x">{shots or "<span>No galaxy in this data got this answer.</span>"}</div>'
        rows.append(row + "</div>")
    return STYLE + f'<div class="gzf">{"".join(rows)}</div>'
