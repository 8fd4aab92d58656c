"""Icons for the tree's 37 answers, drawn here in Galaxy Zoo's manner: light line drawings and soft
glows on a dark rounded square. `ICONS` maps an answer column to its SVG text; `uri` and `label`
put one on a web page or in a button's Markdown label. Strings only, no Streamlit."""
from __future__ import annotations

import base64
import math
from html import escape

from gzcore import tree

INK, GROUND = "#eef3ff", "#1d2740"  # the drawing, the square behind it

# --------------------------------------------------- shapes, in a 100-unit square centred on (0, 0)


def _style(angle: float, x: float, y: float, strength: float) -> str:
    """A shape's turn about (x, y) and opacity, as attributes (none when they change nothing)."""
    turned = f' transform="rotate({angle} {x} {y})"' if angle else ""
    return turned + (f' opacity="{strength}"' if strength < 1 else "")


def glow(rx: float, ry: float | None = None, x: float = 0, y: float = 0, angle: float = 0,
         strength: float = 1.0) -> str:
    """A soft blob of light, brightest at its centre (a bulge, a smooth galaxy, a clump)."""
    return (f'<ellipse cx="{x}" cy="{y}" rx="{rx}" ry="{ry or rx}" fill="url(#glow)"'
            f'{_style(angle, x, y, strength)}/>')


def outline(rx: float, ry: float | None = None, x: float = 0, y: float = 0, angle: float = 0,
            width: float = 2.2, strength: float = 0.75) -> str:
    """An ellipse's edge: the outer rim of a disk, a ring."""
    return (f'<ellipse cx="{x}" cy="{y}" rx="{rx}" ry="{ry or rx}" fill="none" stroke="{INK}" '
            f'stroke-width="{width}"{_style(angle, x, y, strength)}/>')


def disk(bulge: float = 7.0) -> str:
    """A disk seen face-on: a faint haze inside its rim, and a bulge of radius `bulge` (0: none)."""
    return ('<circle r="36" fill="url(#haze)"/>' + outline(36, strength=0.55)
            + (glow(bulge) if bulge else ""))


def _ribbon(points: list[tuple[float, float]], widths: list[float], strength: float = 0.95) -> str:
    """A filled band along `points`, `widths` wide at each: an arm, a tail, an arc that tapers."""
    left, right = [], []
    for i, ((x, y), w) in enumerate(zip(points, widths)):
        (x0, y0), (x1, y1) = points[max(i - 1, 0)], points[min(i + 1, len(points) - 1)]
        length = math.hypot(x1 - x0, y1 - y0) or 1.0
        nx, ny = -(y1 - y0) / length * w / 2, (x1 - x0) / length * w / 2
        left.append(f"{x + nx:.1f},{y + ny:.1f}")
        right.append(f"{x - nx:.1f},{y - ny:.1f}")
    return f'<polygon points="{" ".join(left + right[::-1])}" fill="{INK}" opacity="{strength}"/>'


def arms(n: int, pitch: float, start: float = 6.0, end: float = 40.0, turn: float = 0.0,
         width: float = 6.0, strength: float = 0.95) -> str:
    """`n` logarithmic spiral arms wound at `pitch` degrees (small: tight), from radius `start` to
    `end`, each tapering from `width` to a point; `turn` rotates them all (degrees)."""
    rise = math.tan(math.radians(pitch))
    sweep = math.log(end / start) / rise  # radians an arm turns through on its way out
    steps = max(24, int(sweep * 10))
    out = []
    for i in range(n):
        phase = math.radians(turn) + 2 * math.pi * i / n
        radii = [(sweep * s / steps, start * math.exp(rise * sweep * s / steps)) for s in range(steps + 1)]
        points = [(r * math.cos(t + phase), r * math.sin(t + phase)) for t, r in radii]
        swell = [min(1.0, 0.3 + 3.5 * s / steps) * (1 - s / steps) ** 0.8 for s in range(steps + 1)]
        out.append(_ribbon(points, [width * w + 0.4 for w in swell], strength))
    return "".join(out)


def spiral(n: int = 2, pitch: float = 20.0, bulge: float = 8.0, **options) -> str:
    """A face-on spiral galaxy: arms around a bulge (`options` go to `arms`)."""
    return '<circle r="40" fill="url(#haze)" opacity=".7"/>' + arms(n, pitch, **options) + glow(bulge)


def tilted(drawing: str, angle: float = -30, squash: float = 0.55) -> str:
    """A face-on drawing seen at an angle: squashed to `squash` of its height and turned."""
    return f'<g transform="rotate({angle}) scale(1 {squash})">{drawing}</g>'


def edge_on(length: float = 43, thickness: float = 6.5) -> str:
    """A disk seen edge-on: a thin bright spindle."""
    return (f'<path d="M {-length} 0 Q 0 {-2 * thickness} {length} 0 Q 0 {2 * thickness} {-length} 0 Z" '
            f'fill="url(#glow)"/>' + outline(length, thickness * 0.9, width=1.4, strength=0.5))


def arc(radius: float, start: float, extent: float, width: float = 5.0, x: float = 0, y: float = 0) -> str:
    """A piece of a circle, thickest at its middle and fading to points (a lensed arc)."""
    points = [(x + radius * math.cos(math.radians(start + extent * s / 30)),
               y + radius * math.sin(math.radians(start + extent * s / 30))) for s in range(31)]
    return _ribbon(points, [width * math.sin(math.pi * s / 30) + 0.3 for s in range(31)], 0.9)


def tail(start: tuple[float, float], bend: tuple[float, float], end: tuple[float, float],
         width: float = 5.0) -> str:
    """A tidal tail: a band along a quadratic curve from `start` past `bend` to `end`, tapering."""
    (x0, y0), (x1, y1), (x2, y2) = start, bend, end
    curve = [((1 - t) ** 2 * x0 + 2 * (1 - t) * t * x1 + t * t * x2,
              (1 - t) ** 2 * y0 + 2 * (1 - t) * t * y1 + t * t * y2) for t in (s / 30 for s in range(31))]
    return _ribbon(curve, [width * (1 - s / 30) + 0.4 for s in range(31)], 0.8)


def stroke(d: str, width: float = 8.0) -> str:
    """A drawn line (SVG path data `d`): a tick, a cross, a question mark."""
    return (f'<path d="{d}" fill="none" stroke="{INK}" stroke-width="{width}" stroke-linecap="round" '
            f'stroke-linejoin="round"/>')


def question_mark(x: float = 0, y: float = 0, size: float = 1.0) -> str:
    """A drawn "?" (no font needed)."""
    return (f'<g transform="translate({x} {y}) scale({size})">'
            + stroke("M -11 -13 C -11 -27 11 -27 11 -13 C 11 -4 0 -4 0 7", 7)
            + f'<circle cy="20" r="4.2" fill="{INK}"/></g>')


def star() -> str:
    """A star: a bright point with four diffraction spikes."""
    spikes = "".join(_ribbon([(0, 0), (38 * math.cos(a), 38 * math.sin(a))], [3.2, 0.3], 0.9)
                     for a in (k * math.pi / 2 for k in range(4)))
    return glow(18) + spikes + f'<circle r="5" fill="{INK}"/>'


def dust_lane() -> str:
    """A thick disk seen edge-on, split along its length by a dark lane of dust."""
    lane = f'<path d="M -42 -1 Q 0 6 42 -1" fill="none" stroke="{GROUND}" stroke-width="6" stroke-linecap="round"/>'
    return f'<g transform="rotate(-12)">{glow(44, 16)}{glow(12, 11)}{lane}</g>'


def boxy_bulge() -> str:
    """An edge-on disk's box- or peanut-shaped bulge."""
    box = '<rect x="-13" y="-11" width="26" height="22" rx="4"'
    return f'{box} fill="url(#glow)"/>{box} fill="none" stroke="{INK}" stroke-width="1.6" opacity=".7"/>'


def lumpy(radius: float, wobble: list[tuple[float, float, float]], strength: float = 0.8) -> str:
    """An uneven patch of faint light: radius × (1 + Σ amplitude·cos(k·θ + phase)) for each
    (k, amplitude, phase) in `wobble` (a disturbed or irregular galaxy's outer light)."""
    points = []
    for s in range(72):
        t = 2 * math.pi * s / 72
        r = radius * (1 + sum(a * math.cos(k * t + p) for k, a, p in wobble))
        points.append(f"{r * math.cos(t):.1f},{r * math.sin(t):.1f}")
    return f'<polygon points="{" ".join(points)}" fill="url(#haze)" opacity="{strength}"/>'


# ------------------------------------------------------------------------ one drawing per answer

DRAWINGS: dict[str, str] = {
    # Q1 shape
    "Class1.1": glow(34),
    "Class1.2": tilted(spiral(2, 22, bulge=11, end=48, width=7.5), angle=-25, squash=0.66),
    "Class1.3": star(),
    # Q2 edge-on?
    "Class2.1": edge_on() + glow(8, 6),
    "Class2.2": disk(9) + arms(2, 22, start=9, end=32, width=4, strength=0.45),
    # Q3 bar
    "Class3.1": disk(0) + arms(2, 14, start=19, end=34, width=5) + glow(23, 7) + glow(7),
    "Class3.2": disk(0) + arms(2, 14, start=10, end=34, width=5, turn=90) + glow(10),
    # Q4 spiral
    "Class4.1": spiral(2, 20, turn=30),
    "Class4.2": disk(10),
    # Q5 bulge
    "Class5.1": disk(0),
    "Class5.2": disk(6),
    "Class5.3": disk(14),
    "Class5.4": disk(26),
    # Q6 anything odd?
    "Class6.1": stroke("M -22 2 L -7 18 L 24 -18", 10),
    "Class6.2": stroke("M -18 -18 L 18 18 M 18 -18 L -18 18", 10),
    # Q7 roundness
    "Class7.1": glow(27) + outline(30, strength=0.5, width=1.6),
    "Class7.2": glow(30, 19, angle=-30) + outline(33, 21, angle=-30, strength=0.5, width=1.6),
    "Class7.3": glow(36, 9, angle=-30) + outline(39, 10.5, angle=-30, strength=0.5, width=1.6),
    # Q8 odd feature
    "Class8.1": tilted(outline(30, width=6, strength=0.9) + glow(36, strength=0.35) + glow(8), angle=-20,
                       squash=0.8),
    "Class8.2": glow(11) + arc(30, 195, 80) + arc(30, 15, 65, width=4),
    "Class8.3": lumpy(30, [(1, 0.25, 0.4), (2, 0.12, 1.3), (3, 0.07, 2.0)])
    + arms(1, 30, start=6, end=44, width=6.5) + arms(1, 14, start=6, end=19, turn=200, width=5)
    + glow(4, x=-30, y=22) + glow(3, x=-38, y=12) + glow(9, x=2, y=1),
    "Class8.4": lumpy(30, [(1, 0.15, 2.0), (2, 0.2, 0.3), (3, 0.1, 1.0)], strength=0.6)
    + "".join(glow(r, x=x, y=y) for x, y, r in  # clumps, no centre
              ((-16, -10, 11), (6, -18, 8), (14, 4, 12), (-6, 14, 9), (-24, 12, 6), (26, -14, 5), (22, 22, 6))),
    "Class8.5": question_mark(size=1.25, y=2),
    "Class8.6": tail((-10, -6), (-36, -40), (8, -38), 6) + tail((10, 6), (36, 40), (-8, 38), 6)
    + glow(16, 12, x=-10, y=-5, angle=30) + glow(14, 11, x=11, y=6, angle=-20),
    "Class8.7": dust_lane(),
    # Q9 edge-on bulge
    "Class9.1": edge_on() + glow(14, 12) + outline(12, 10, strength=0.6, width=1.5),
    "Class9.2": edge_on() + boxy_bulge(),
    "Class9.3": edge_on(44, 5),
    # Q10 arm winding
    "Class10.1": spiral(2, 10, bulge=6, start=5, width=4.5),
    "Class10.2": spiral(2, 18, bulge=6, start=5, turn=20),
    "Class10.3": spiral(2, 34, bulge=6, start=5, turn=60, width=7),
    # Q11 arm count
    "Class11.1": spiral(1, 20, bulge=7, width=7),
    "Class11.2": spiral(2, 25, bulge=7, turn=90),
    "Class11.3": spiral(3, 25, bulge=7, width=5.5),
    "Class11.4": spiral(4, 25, bulge=7, width=5, turn=45),
    "Class11.5": spiral(6, 28, bulge=7, width=4, end=38),
    "Class11.6": f'<g opacity=".45">{spiral(2, 22, bulge=8)}</g>' + question_mark(size=1.1, y=2),
}

# the two fills: `glow`, bright at the centre and fading to nothing; `haze`, faint throughout
DEFS = ('<defs><radialGradient id="glow"><stop offset="0" stop-color="{ink}"/>'
        '<stop offset=".35" stop-color="{ink}" stop-opacity=".8"/>'
        '<stop offset="1" stop-color="{ink}" stop-opacity="0"/></radialGradient>'
        '<radialGradient id="haze"><stop offset="0" stop-color="{ink}" stop-opacity=".28"/>'
        '<stop offset="1" stop-color="{ink}" stop-opacity=".06"/></radialGradient></defs>').format(ink=INK)


def _svg(column: str, drawing: str) -> str:
    """One icon: the drawing on the square, its gradient ids made unique to it (several icons may
    share a page)."""
    prefix = column.lower().replace(".", "-") + "-"
    body = (DEFS + drawing).replace('id="', f'id="{prefix}').replace("url(#", f"url(#{prefix}")
    name = escape(tree.ANSWER_BY_COLUMN[column].long)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100" width="64" height="64" role="img" '
            f'aria-label="{name}"><rect width="100" height="100" rx="18" fill="{GROUND}"/>'
            f'<g transform="translate(50 50)">{body}</g></svg>')


ICONS: dict[str, str] = {column: _svg(column, DRAWINGS[column]) for column in tree.COLUMNS}


def uri(column: str) -> str:
    """An answer's icon as a data URI, for an <img> or a Markdown image."""
    return "data:image/svg+xml;base64," + base64.b64encode(ICONS[column].encode()).decode()


def label(column: str, picture: str | None = None) -> str:
    """A button's Markdown label: the answer's icon, its words, then `picture` (a data URI) if any."""
    return f"![]({uri(column)}) {tree.ANSWER_BY_COLUMN[column].long}" + (f" ![]({picture})" if picture else "")


# a button whose label holds pictures: the icon at the left, the words beside it, a picture after
# them at the right
BUTTON_CSS = """<style>
.stButton button:has(p>img) :is(div,span):has(p>img){width:100%;justify-content:flex-start}
.stButton button p:has(>img){display:flex;align-items:center;gap:.8rem;width:100%;text-align:left;
 white-space:normal}
.stButton button p>img{height:2.6rem !important;max-height:none !important;width:auto;border-radius:.45rem}
.stButton button p>img~img{height:4.2rem !important;margin-left:auto;border-radius:.3rem}
</style>"""
