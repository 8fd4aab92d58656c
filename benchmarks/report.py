"""docs/BENCHMARKS.md: one table per section, each stamped with its machine, date and command.

Sections live between `<!-- section: NAME -->` markers, so a run of some sections (`--only`)
replaces those and keeps the others, which may come from another machine (the GPU section).
Hand-written notes after a `<!-- notes -->` line stay at the end, untouched."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .common import Row

HEADER = """\
# Benchmarks

Produced by `python -m benchmarks.run` (every section, about 45 minutes on a 2-core CPU; the GPU
section runs only where CUDA is available). `--only decode,train,...` reruns some sections and keeps
the others; `--quick` is a smoke run of a few seconds per section whose figures prove only that the
code runs. Each section says when, on which machine and with which command it was measured.

How comparisons are made: the machines are shared and noisy, so ours and the reference run side by
side in the same process, interleaved (the order alternates between repeats), and the tables give
the median of the repeats; a ratio is the median of the per-repeat ratios, > 1 meaning ours is
better. The references are plain re-implementations of published pipelines, in
`benchmarks/blog.py` (its docstring says what was taken from the post and what had to be chosen).
"""
NOTES = "<!-- notes -->"
MARK = re.compile(r"<!-- section: (\w+) -->\n(.*?)<!-- /section: \1 -->\n", re.S)


@dataclass
class Result:
    """One section's outcome."""
    name: str
    title: str
    about: str
    rows: list[Row] = field(default_factory=list)
    seconds: float = 0.0
    skipped: str | None = None
    error: str | None = None


def fmt(value) -> str:
    """Numbers to 3-4 significant digits, thousands separated; text as it is."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    size = abs(value)
    if size >= 100:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def table(rows: list[Row]) -> str:
    lines = ["| what | ours | reference | ratio | goal | met? |", "|---|---:|---:|---:|---|:---:|"]
    for r in rows:
        unit = f" {r.unit}" if r.unit else ""
        ref = f"{fmt(r.reference)}{unit}" if r.reference is not None else "—"
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "—"
        met = {True: "yes", False: "**no**", None: ""}[r.met]
        lines.append(f"| {r.what} | {fmt(r.ours)}{unit} | {ref} | {ratio} | {r.goal} | {met} |")
    return "\n".join(lines)


def section(number: int, result: Result, stamp: str) -> str:
    """The markdown of one section, between its markers."""
    body = [f"## {number}. {result.title}", "", result.about, "", f"_{stamp}; {result.seconds:.0f} s._", ""]
    if result.error:
        body.append(f"**Failed:** `{result.error}`")
    elif result.skipped:
        body.append(f"Skipped: {result.skipped}.")
    else:
        body.append(table(result.rows))
    return f"<!-- section: {result.name} -->\n" + "\n".join(body) + f"\n\n<!-- /section: {result.name} -->\n"


def write(path: Path, results: list[Result], order: list[str], stamp: str) -> Path:
    """Rewrite `path` with these results, keeping the sections of earlier runs that were not rerun."""
    path = Path(path)
    old = path.read_text() if path.is_file() else ""
    blocks = {m.group(1): m.group(0) for m in MARK.finditer(old)}
    notes = old[old.index(NOTES):] if NOTES in old else ""
    for result in results:
        blocks[result.name] = section(order.index(result.name) + 1, result, stamp)
    path.parent.mkdir(parents=True, exist_ok=True)
    sections = "\n".join(blocks[name] for name in order if name in blocks)
    path.write_text(HEADER + "\n" + sections + ("\n" + notes if notes else ""))
    return path
