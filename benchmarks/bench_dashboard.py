"""Section 8: the dashboard's responsiveness: a Browse filter change on the real sample and on a
60,000-row catalogue, and each page's time to first content and to a finished run in Chromium."""
from __future__ import annotations

import time

import numpy as np

from gzcore import catalog, checkpoint, evaluate, tree
from gzcore.dashboard import navigation

from . import browser
from .common import Context, Row, median_ms

TITLE = "Dashboard"
ABOUT = """\
Browse filter change: what the Browse page computes when a filter or the sort changes —
`catalog.select` with two range filters (crowd conditional Q1 smooth ≥ 0.5, crowd reach of Q4 ≥ 0.2)
sorted by confident disagreement, then the visible page of 24 and their one-line tree summaries — on
the real sample's catalogue (shipped model, no TTA) and on a synthetic 60,000-row catalogue (random
answers that obey the tree); median of repeated calls. `catalog.enrich` is the one-off cost of the
derived columns when a catalogue is loaded. Pages: `streamlit run app.py` on the real sample, pages
visited once (warm caches), then the time from navigation to the page's first content (its title)
and to the end of its script run (Streamlit's status widget gone), in Debian's Chromium; median of
repeats. First start: `streamlit run` on the real sample (GZ_DATA) with an empty cache folder (crops
decoded, model loaded, as a new user's first start) until Home shows the model's figures.
"""

READY = {navigation.HOME: "Validation RMSE", navigation.BROWSE: "galaxies match",
         navigation.GALAXY: "Galaxies like this one", navigation.EXPLAIN: "Saliency (fast) · model",
         navigation.EVALUATE: "Download all predictions", navigation.DATASET: "most confident galaxy",
         navigation.TRAIN: "Start training", navigation.PLAY: "Another galaxy"}  # text shown when done


def random_catalogue(n: int, seed: int = 0):
    """An enriched catalogue of n galaxies whose model and crowd answers are random but obey the tree."""
    rng = np.random.default_rng(seed)

    def answers():
        return tree.to_weighted(np.concatenate([rng.dirichlet(np.ones(len(q.answers)), n)
                                                for q in tree.QUESTIONS], axis=1))
    return evaluate.predictions_table(np.arange(n), answers(), answers())


def browse_change(table):
    ranges = [catalog.Range("crowd cond Class1.1", 0.5), catalog.Range("crowd reach Q4", 0.2)]
    visible = catalog.select(table, ranges, "disagreement")[:24]
    return [tree.summary(w) for w in catalog.weighted(table, rows=visible)]


def page_times(ctx: Context, env: dict) -> list[Row]:
    rows = []
    with browser.server(env) as url, browser.chromium() as page:
        for target, ready in READY.items():  # warm: predictions, embeddings, crops all cached
            browser.goto(page, f"{url}/{target.url_path}", ready)
        for target, ready in READY.items():
            first, done = [], []
            for _ in range(ctx.pick(3, 1)):
                start = time.perf_counter()
                page.goto(f"{url}/{target.url_path}")
                page.locator("h1").first.wait_for()
                first.append(time.perf_counter() - start)
                page.get_by_text(ready).first.wait_for()
                browser.settle(page)
                done.append(time.perf_counter() - start - 0.3)  # settle() waits 0.3 s before looking
            rows.append(Row(f"{target.name} page (warm): first content · run finished",
                            f"{np.median(first):.2f} s · {np.median(done):.2f} s"))
    return rows


def first_start(ctx: Context) -> Row:
    """`streamlit run` on the real sample with an empty cache (crops decoded, model loaded) until
    Home shows the model's figures, as a new user's first start."""
    start = time.perf_counter()
    env = {"GZ_DATA": str(ctx.data), "GZ_CHECKPOINT": str(ctx.checkpoint), "GZ_CACHE": str(ctx.scratch / "fresh")}
    with browser.server(env) as url, browser.chromium() as page:
        page.goto(url)
        page.get_by_text("Validation RMSE").first.wait_for(timeout=120_000)
        seconds = time.perf_counter() - start
    return Row("first start on the real sample: `streamlit run` to Home with the model's figures "
               "(empty cache)", seconds, "s", goal="≤ 15 s", met=seconds <= 15)


def run(ctx: Context) -> list[Row]:
    model, ckpt = checkpoint.load(ctx.checkpoint)
    held = checkpoint.data_for(ckpt, ctx.data, cache_dir=ctx.cache)
    real = catalog.build(held.galaxies, held.crops, model, ckpt, ctx.checkpoint, ctx.scratch)
    n = ctx.pick(60_000, 6_000)
    raw = random_catalogue(n)
    start = time.perf_counter()
    big = catalog.enrich(raw)
    seconds = time.perf_counter() - start
    rows = [Row(f"catalog.enrich, {n:,} rows (once per model and data)", 1000 * seconds, "ms")]
    for name, table in ((f"real sample ({ctx.model_note})", real), ("synthetic catalogue", big)):
        ms = median_ms(lambda: browse_change(table), ctx.pick(20, 3))
        rows.append(Row(f"Browse filter change, {name}, {len(table):,} rows", ms, "ms", goal="< 100 ms",
                        met=ms < 100))
    if not browser.CHROMIUM.is_file():
        return rows + [Row("page times", f"skipped: {browser.CHROMIUM} not found")]
    env = {"GZ_DATA": str(ctx.data), "GZ_CHECKPOINT": str(ctx.checkpoint), "GZ_CACHE": str(ctx.cache)}
    rows += page_times(ctx, env)
    return rows if ctx.quick else rows + [first_start(ctx)]
