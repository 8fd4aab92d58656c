"""A galaxy's answers as one block of HTML and CSS (st.html) rather than a Plotly figure per
question: the same bars — crowd (or true) vs model on a fixed [0, 1] scale, the model's ± spread as
a whisker, a second model's bars, questions few reach greyed, exact values on hover (title
attributes) — for a small fraction of the server's time (no figure objects, no JSON of templates).
Strings in, a string out; every name is escaped (class names come from a user's labels CSV)."""
from __future__ import annotations

import math
from html import escape

import numpy as np

from gzcore.dashboard.charts import CROWD, GREY_CROWD, GREY_MODEL, GREY_OTHER, MODEL, OTHER

TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)
# --w: the [0, 1] scale's width in a bar's box, the rest holds the value's label (rem: the same in every child)
STYLE = """<style>
.gzb{display:grid;grid-template-columns:repeat(var(--gzb-cols,2),minmax(0,1fr));gap:1.4rem 2.2rem;
 font-size:.8rem;line-height:1.25;margin:.2rem 0 .6rem}
@media (max-width:720px){.gzb{grid-template-columns:minmax(0,1fr)}}
.gzb-q{min-width:0}
.gzb-t{font-weight:600;font-size:.92rem;margin:0 0 .1rem}
.gzb-c{opacity:.62;font-size:.76rem;margin:0 0 .45rem}
.gzb-few .gzb-t,.gzb-few .gzb-n,.gzb-few .gzb-v{opacity:.55}
.gzb-rows{display:grid;grid-template-columns:minmax(4.5em,9em) minmax(0,1fr);row-gap:.5rem;align-items:center}
.gzb-n{text-align:right;padding-right:.6em;overflow-wrap:anywhere}
.gzb-bars{position:relative;display:flex;flex-direction:column;gap:2px;--w:calc(100% - 5.6rem)}
.gzb-bars::before,.gzb-ax::before{content:"";position:absolute;top:-4px;bottom:-4px;left:0;width:var(--w);
 pointer-events:none;border-right:1px solid rgba(128,128,128,.25);
 background:linear-gradient(to right,rgba(128,128,128,.25) 1px,transparent 1px) 0 0/25% 100% repeat-x}
.gzb-b{position:relative;height:13px}
.gzb-f{position:absolute;left:0;top:0;bottom:0;border-radius:0 2px 2px 0}
.gzb-e{position:absolute;top:3px;bottom:3px;border-left:1.2px solid currentColor;border-right:1.2px solid currentColor;
 background:linear-gradient(currentColor,currentColor) center/100% 1.2px no-repeat;opacity:.8}
.gzb-v{position:absolute;top:50%;transform:translateY(-50%);font-size:.72rem;white-space:nowrap;
 font-variant-numeric:tabular-nums}
.gzb-ax{position:relative;height:1.1em;font-size:.68rem;opacity:.6;--w:calc(100% - 5.6rem)}
.gzb-ax::before{top:-.5rem;bottom:auto;height:.3rem}
.gzb-ax span{position:absolute;transform:translateX(-50%)}
</style>"""


def _at(x: float) -> str:
    """A position on the scale, for a style: a fraction of --w."""
    return f"calc(var(--w) * {min(max(x, 0.0), 1.0):.4f})"


def _number(x: float, digits: int) -> str:
    return "–" if not math.isfinite(x) else f"{x:.{digits}f}"


def _exact(x: float) -> str:
    """A value for the hover text: 3 decimals, or 1 significant digit below 0.0005 (a small spread)."""
    return _number(x, 3) if not math.isfinite(x) or x == 0 or abs(x) >= 0.0005 else f"{x:.1g}"


def _bar(source: str, answer: str, value: float, colour: str, spread: float | None) -> str:
    """One bar: its fill, the ± whisker (`spread`, when given and finite), its label after both."""
    exact = _number(value, 3) + ("" if spread is None or not math.isfinite(spread) else f" ± {_exact(spread)}")
    title = f"{source} · {answer}: {exact if math.isfinite(value) else 'no value'}"
    if not math.isfinite(value):
        return f'<div class="gzb-b" title="{escape(title)}"><span class="gzb-v" style="left:0">–</span></div>'
    parts = [f'<span class="gzb-f" style="width:{_at(value)};background:{colour}"></span>']
    end, label = value, _number(value, 2)
    if spread is not None and math.isfinite(spread) and spread > 0:
        lo, hi = max(value - spread, 0.0), min(value + spread, 1.0)
        parts.append(f'<span class="gzb-e" style="left:{_at(lo)};width:calc(var(--w) * {hi - lo:.4f})"></span>')
        end, label = max(value, hi), f"{label} ± {spread:.2f}"
    elif spread is not None and math.isfinite(spread):
        label += " ± 0.00"
    parts.append(f'<span class="gzb-v" style="left:calc({_at(end)} + 5px)">{label}</span>')
    return f'<div class="gzb-b" title="{escape(title)}">{"".join(parts)}</div>'


def question(names: list[str], crowd: np.ndarray | None, model: np.ndarray, greyed: bool,
             spread: np.ndarray | None = None, other: np.ndarray | None = None, other_name: str = "other model",
             title: str = "", caption: str = "", sources: tuple[str, str] = ("crowd", "model")) -> str:
    """One question's (or a classifier's) answers as charts.answers draws them: per answer the
    crowd's (`sources[0]`; omitted when all NaN: nobody reached it), the model's (± `spread`) and
    `other`'s bars, greyed colours when `greyed`, under `title` and `caption` (plain text)."""
    series = [(sources[0], crowd, GREY_CROWD if greyed else CROWD, None),
              (sources[1], model, GREY_MODEL if greyed else MODEL, spread)]
    if other is not None:
        series.append((other_name, other, GREY_OTHER if greyed else OTHER, None))
    series = [(s, np.asarray(v, np.float64), c, None if e is None else np.asarray(e, np.float64))
              for s, v, c, e in series if v is not None and not np.isnan(np.asarray(v, np.float64)).all()]
    rows = []
    for k, name in enumerate(names):
        summary = " · ".join(f"{s} {_number(v[k], 3)}" + ("" if e is None else f" ± {_exact(e[k])}")
                             for s, v, _, e in series)
        bars = "".join(_bar(s, name, float(v[k]), c, None if e is None else float(e[k])) for s, v, c, e in series)
        rows.append(f'<div class="gzb-n" title="{escape(f"{name}: {summary}")}">{escape(name)}</div>'
                    f'<div class="gzb-bars">{bars}</div>')
    axis = "".join(f'<span style="left:{_at(t)}">{t:g}</span>' for t in TICKS)
    head = (f'<div class="gzb-t">{escape(title)}</div>' if title else "") + \
        (f'<div class="gzb-c">{escape(caption)}</div>' if caption else "")
    return (f'<div class="gzb-q{" gzb-few" if greyed else ""}">{head}<div class="gzb-rows">{"".join(rows)}'
            f'<div></div><div class="gzb-ax">{axis}</div></div></div>')


def block(questions: list[str], columns: int = 2) -> str:
    """Questions (`question`'s HTML) in a grid of `columns` (one on a narrow screen), with the style."""
    return f'{STYLE}<div class="gzb" style="--gzb-cols:{int(columns)}">{"".join(questions)}</div>'
