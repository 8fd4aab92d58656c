"""The first view on a cold cache, in a real browser: how long visitors wait when nobody has opened
this data with this model before.

    python -m benchmarks.first_view [--data DIR] [--out artifacts/first_view.json]

One `streamlit run app.py` on the data (default: the real sample) with an empty cache folder, and
Debian's Chromium, each visitor a session of its own:
1. Browse opened on the fresh server (its first page: 24 galaxies, their images and the model's
   answers), then page 2; the server process imports torch and loads the model on that first visit,
   so this time includes them;
2. a galaxy from the middle of the data, opened by its link;
3. Evaluate (the held-out galaxies' figures), then Compare (the shipped student against its teacher,
   the ensemble: both predict only the galaxies both hold out);
4. when every galaxy's prediction is done (Browse shows its filters and sorting) and when the
   embeddings are (Galaxy shows its look-alikes), from the first visit.
Each time runs from navigation until the page's run has finished with its content on screen.
"""
from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path

from benchmarks import REAL_DATA, browser


def timed(page, url: str, ready: str, count: int = 1) -> float:
    """Seconds from opening `url` until `count` elements with the text `ready` show and the run ends."""
    begun = time.perf_counter()
    page.goto(url)
    page.get_by_text(ready).nth(count - 1).wait_for()
    browser.settle(page, timeout=600_000)
    return time.perf_counter() - begun


def fresh(page):
    """A new page in a context of its own: another visitor, another Streamlit session."""
    visitor = page.context.browser.new_page(viewport={"width": 1400, "height": 900})
    visitor.set_default_timeout(600_000)
    return visitor


def run(folder: Path, shots: Path | None = None) -> dict:
    import pandas as pd
    ids = pd.read_csv(folder / "training_solutions_rev1.csv", usecols=["GalaxyID"]).GalaxyID.to_numpy()
    out: dict = {"galaxies": len(ids)}

    def snap(page, name):
        if shots is not None:
            shots.mkdir(parents=True, exist_ok=True)
            browser.snap(page, shots / f"{name}.png")
    with tempfile.TemporaryDirectory(prefix="gz-first-view-") as cache, \
            browser.server({"GZ_DATA": str(folder), "GZ_CACHE": cache}, timeout=120) as url, \
            browser.chromium() as page:
        page.set_default_timeout(600_000)
        started = time.perf_counter()
        out["browse first page (fresh server: imports and model load included)"] = timed(
            page, f"{url}/browse", "Open ", 24)
        snap(page, "browse-preview")
        box = page.get_by_label("Page (of", exact=False)
        begun = time.perf_counter()
        box.fill("2")
        box.press("Enter")
        page.get_by_text(f"Open {ids[24]}").wait_for()
        browser.settle(page)
        out["browse page 2"] = time.perf_counter() - begun
        galaxy = fresh(page)
        out["galaxy page of a galaxy from the middle"] = timed(
            galaxy, f"{url}/galaxy?galaxy={ids[len(ids) // 2]}", "The 11 questions")
        snap(galaxy, "galaxy-preview")
        evaluate = fresh(page)
        out["evaluate: held-out figures"] = timed(evaluate, f"{url}/evaluate", "RMSE per question")
        snap(evaluate, "evaluate-held-out")
        compare = fresh(page)
        compare.goto(f"{url}/compare")
        preset = compare.get_by_role("button", name=re.compile("against its teacher"))
        preset.wait_for()
        browser.settle(compare)
        begun = time.perf_counter()
        preset.click()
        compare.get_by_text("Verdict").wait_for()
        browser.settle(compare, timeout=600_000)
        out["compare default.pt with ensemble.pt"] = time.perf_counter() - begun
        snap(compare, "compare")
        page.get_by_text("galaxies match").wait_for(timeout=900_000)
        out["every galaxy predicted (Browse filters and sorting), from the first visit"] = \
            time.perf_counter() - started
        browser.settle(page)
        snap(page, "browse-ready")
        look = fresh(page)
        look.goto(f"{url}/galaxy?galaxy={ids[7]}")
        look.get_by_text("Nearest in the model's feature space").wait_for(timeout=900_000)
        out["embeddings ready (Galaxy's look-alikes), from the first visit"] = time.perf_counter() - started
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.first_view", description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=REAL_DATA)
    p.add_argument("--out", type=Path, default=Path("artifacts/first_view.json"))
    p.add_argument("--screenshots", type=Path, default=None, help="a folder for screenshots of each page")
    args = p.parse_args(argv)
    result = run(args.data, args.screenshots)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    for what, value in result.items():
        print(f"{what}: {value:.1f} s" if isinstance(value, float) else f"{what}: {value:,}")


if __name__ == "__main__":
    main()
