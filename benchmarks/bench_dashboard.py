"""Section 10: the dashboard's responsiveness: a Browse filter change on the real sample, on a
60,000-row catalogue and on a million-row predictions table, an Atlas colour change on 60,000 points,
and each page's time to first content and to a finished run in Chromium."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

import pandas as pd
import plotly.io
import plotly.tools

from gzcore import atlas, catalog, checkpoint, computed, data, evaluate, large_catalog, survey, tree
from gzcore.dashboard import charts, navigation

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
repeats. A million galaxies: a synthetic `gz predict` output (Parquet parts of 2,048 rows: GalaxyID,
the 37 answers obeying the tree, their spread; the first ids are the real sample's, so those have
thumbnails) indexed once (`large_catalog.build`), then Browse's work on it read a column at a time:
a filter change (as above, on the model's columns) and a sort change (least certain first), each with
the visible page's summaries; median of repeated calls. In Chromium: `streamlit run` with
GZ_PREDICTIONS, Browse opened (warm), the sort changed by keyboard until the run finished, and the
server process's resident memory (VmRSS, torch included) after it. First start: `streamlit run` on the real sample (GZ_DATA) with an empty cache folder (crops
decoded, model loaded, as a new user's first start) until Home shows the model's figures.
Atlas colour change: the Atlas page's server work when the colour changes — the colour choices
(`catalog.column_labels`), the column, the WebGL figure (`charts.atlas`) and its JSON as
`st.plotly_chart` makes it (figure to dict, `plotly.io.to_json`) — for the synthetic 60,000-row
catalogue at random map positions, alternating between two answers; median of repeated calls. Maps of
the real sample: `atlas.pca` and `atlas.umap` of the shipped model's embeddings of every galaxy; UMAP
once in a fresh process (numba compiles it first) and once after, PCA the median of repeats.
"""

READY = {navigation.HOME: "Validation RMSE", navigation.BROWSE: "galaxies match",
         navigation.GALAXY: "Galaxies like this one", navigation.EXPLAIN: "Integrated Gradients (32 passes) · model",
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


def million_predictions(folder, n: int, real_ids: np.ndarray, seed: int = 0) -> None:
    """A `gz predict --out X.parquet` folder of n galaxies whose answers are random but obey the
    tree, with a spread each; the first ids are `real_ids`."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    ids = np.concatenate([real_ids, np.arange(n - len(real_ids)) + 10_000_000])[:n]
    for shard, start in enumerate(range(0, n, survey.SHARD)):
        m = min(survey.SHARD, n - start)
        w = tree.to_weighted(np.concatenate([rng.dirichlet(np.ones(len(q.answers)), m) for q in tree.QUESTIONS],
                                            axis=1))
        part = evaluate.predictions_table(ids[start:start + m], w)
        part[[f"{c} spread" for c in tree.COLUMNS]] = (0.1 * np.sqrt(w) * rng.random((m, 37))).astype(np.float32)
        part.to_parquet(survey.part_path(folder, shard), index=False)


def atlas_recolour(table, xy: np.ndarray, column: str) -> str:
    """The Atlas page's server work when the colour changes (see ABOUT); the chart's JSON."""
    labels = catalog.column_labels(table)
    fig = charts.atlas(xy, table[column].to_numpy(np.float32), labels[column], table.GalaxyID.to_numpy())
    return plotly.io.to_json(plotly.tools.return_figure_from_figure_or_data(fig, True), validate=False)


def atlas_rows(ctx: Context, table, embeddings: np.ndarray) -> list[Row]:
    """An Atlas colour change on `table` (the synthetic catalogue) and the maps of the real
    sample's `embeddings`."""
    xy = np.random.default_rng(0).normal(size=(len(table), 2)).astype(np.float32)
    columns = iter(["crowd cond Class1.1", "cond Class4.1"] * 100)
    ms = median_ms(lambda: atlas_recolour(table, xy, next(columns)), ctx.pick(20, 3))
    rows = [Row(f"Atlas colour change, {len(table):,} points (figure built, serialised)", ms, "ms",
                goal="≤ 300 ms", met=ms <= 300)]
    n = len(embeddings)
    rows.append(Row(f"Atlas PCA map of the real sample, {n:,} galaxies", median_ms(lambda: atlas.pca(embeddings),
                                                                                   ctx.pick(10, 3)), "ms"))
    if ctx.quick:  # numba's compile alone takes minutes: no smoke run
        return rows + [Row("Atlas UMAP map of the real sample", "skipped in quick mode")]
    for when in ("first in a process: numba compiles", "after"):
        start = time.perf_counter()
        atlas.umap(embeddings)
        rows.append(Row(f"Atlas UMAP map of the real sample, {n:,} galaxies ({when})", time.perf_counter() - start,
                        "s"))
    return rows


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def million_rows(ctx: Context) -> list[Row]:
    n = ctx.pick(1_000_000, 20_000)
    source = ctx.scratch / "million.parquet"
    real = pd.read_csv(ctx.data / data.LABELS_FILE, usecols=["GalaxyID"]).GalaxyID.to_numpy()
    million_predictions(source, n, real)
    start = time.perf_counter()
    path = large_catalog.build(source, ctx.scratch)
    rows = [Row(f"indexing a {n:,}-row predictions table (large_catalog.build, once per table)",
                time.perf_counter() - start, "s")]
    filters = [catalog.Range("cond Class1.1", 0.5), catalog.Range("reach Q4", 0.2)]

    def change(ranges, sort_by):  # a fresh Catalogue: every column read from the file, none held yet
        table = large_catalog.Catalogue(path)
        visible = catalog.page(table, ranges, sort_by, True, 0, 24)[1]
        return catalog.summaries(table, rows=visible)
    for what, ranges, sort_by in (("filter change (2 filters on the model's answers, sorted by "
                                   "uncertainty)", filters, "uncertainty"),
                                  ("sort change (no filter, least certain first)", [], "uncertainty")):
        ms = median_ms(lambda: change(ranges, sort_by), ctx.pick(20, 3))
        rows.append(Row(f"Browse {what}, {n:,} rows", ms, "ms", goal="≤ 150 ms", met=ms <= 150))
    if not browser.CHROMIUM.is_file():
        return rows
    env = {"GZ_DATA": str(ctx.data), "GZ_CHECKPOINT": str(ctx.checkpoint), "GZ_CACHE": str(ctx.scratch),
           "GZ_PREDICTIONS": str(source), "GZ_IMAGES": str(ctx.data)}
    with browser.server(env) as url, browser.chromium() as page:
        browser.goto(page, f"{url}/browse", "galaxies match")
        times = []
        for option in ("spread · Q1 smooth", "uncertainty: the model's spread") * ctx.pick(3, 1):
            page.wait_for_timeout(500)  # the run's last elements replace the stale ones
            box = page.get_by_label("Sort by").last
            box.click()
            box.fill(option)
            start = time.perf_counter()
            page.keyboard.press("Enter")
            browser.settle(page)
            times.append(time.perf_counter() - start - 0.3)  # settle() waits 0.3 s before looking
        memory = _rss_mb(url.pid)
    rows.append(Row(f"Browse sort change in Chromium, {n:,} rows: keyboard to finished run", np.median(times),
                    "s"))
    rows.append(Row(f"server memory (VmRSS) after browsing {n:,} rows", memory, "MB", goal="≤ 1,536 MB",
                    met=memory <= 1536))
    return rows


def page_times(ctx: Context, env: dict) -> list[Row]:
    rows = []
    with browser.server(env) as url, browser.chromium() as page:
        page.set_default_timeout(900_000)  # the first visits compute the catalogue (minutes without AVX-512)
        for target, ready in READY.items():  # warm: predictions, embeddings, crops all cached
            browser.goto(page, f"{url}/{target.url_path}", ready)
        page.set_default_timeout(120_000)
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
    subject = computed.Subject(held.galaxies, ckpt, Path(ctx.checkpoint), ctx.scratch)
    real = catalog.build(subject, held.crops, model)
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
    rows += atlas_rows(ctx, big, catalog.embeddings(subject, held.crops, model))
    if not browser.CHROMIUM.is_file():
        return rows + million_rows(ctx) + [Row("page times", f"skipped: {browser.CHROMIUM} not found")]
    env = {"GZ_DATA": str(ctx.data), "GZ_CHECKPOINT": str(ctx.checkpoint), "GZ_CACHE": str(ctx.cache)}
    rows += page_times(ctx, env) + million_rows(ctx)
    return rows if ctx.quick else rows + [first_start(ctx)]
