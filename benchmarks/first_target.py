"""A first model of a new target made from the dashboard's Train page with its defaults, timed as a user
meets it (issue 26): a folder above its `images/`, the labels CSV beside them, the target column, the
units; Start training; the model with its held-out score. tests/test_browser_target.py drives the same
steps on a tiny set; this script on the real metallicity set:

    python -m benchmarks.first_target [--folder ../shared/data/sdss-metallicity] [--units dex]

It starts `streamlit run app.py` with a fresh cache, prints the seconds from "Start training" to the
page's "Before and after" and the new model's held-out RMSE (the page's, 8-view TTA, and the
checkpoint's, one view), and writes 1280x720 screenshots to artifacts/screenshots/."""
from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from pathlib import Path

from benchmarks import ROOT
from benchmarks.browser import chromium, goto, server, settle, snap

SHOTS = ROOT / "artifacts" / "screenshots"


def first_target(page, url: str, folder: Path, units: str | None = None, epochs: int | None = None,
                 shots: Path | None = None, name: str = "train-target", start: bool = True,
                 timeout_s: float = 600) -> dict:
    """On the Train page at `url`: type `folder` (the one above `images/`), take the suggested image
    folder, keep the labels CSV and target found beside it, type `units`, and train with the page's
    defaults (or by `epochs` for a quick run); returns {'seconds': from the click to the results,
    'after': the page's held-out RMSE text}; without `start`, {} once the form is filled. Screenshots
    go to `shots`: `name`.png the filled form (the viewport), `name`-done.png the results (the whole
    page)."""
    goto(page, f"{url}/train", "Start training")
    box = page.get_by_role("textbox", name="Data folder")
    box.fill(str(folder))
    box.press("Enter")
    page.get_by_text("holds no images itself").wait_for()
    settle(page)
    page.get_by_role("button", name=re.compile(r"^Use .*images$")).click()
    page.get_by_text("Trains ").first.wait_for()
    settle(page)
    if units is not None:
        unit_box = page.get_by_role("textbox", name="Units")
        unit_box.fill(units)
        unit_box.press("Enter")
        page.get_by_text(f"({units}), from").first.wait_for()
        settle(page)
    if epochs is not None:
        page.get_by_role("spinbutton", name="Minutes (0 = no limit)").fill("0")
        page.get_by_role("spinbutton", name="Epochs", exact=True).fill(str(epochs))
    if shots:
        page.screenshot(path=shots / f"{name}.png")
    if not start:
        return {}
    started = time.time()
    page.get_by_role("button", name="Start training").click()
    page.get_by_role("heading", name="Before and after").wait_for(timeout=timeout_s * 1000)
    seconds = time.time() - started
    settle(page)
    after = page.get_by_test_id("stMetric").filter(has_text="After").first.inner_text()
    if shots:
        snap(page, shots / f"{name}-done.png")  # the whole page: the results are below the form
    return {"seconds": seconds, "after": " ".join(after.split())}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=ROOT.parent / "shared" / "data" / "sdss-metallicity")
    parser.add_argument("--units", default="dex")
    parser.add_argument("--form-only", action="store_true", help="fill the form and take its screenshot; no run")
    args = parser.parse_args(argv)
    SHOTS.mkdir(parents=True, exist_ok=True)
    from gzcore import checkpoint
    with tempfile.TemporaryDirectory() as cache, server({"GZ_CACHE": cache}, timeout=120) as url, \
            chromium(1280, 720) as page:
        load = os.getloadavg()[0]
        found = first_target(page, url, args.folder.resolve(), args.units, shots=SHOTS, name="train-metallicity",
                             start=not args.form_only)
        if args.form_only:
            return
        load = (load, os.getloadavg()[0])
        run = max((Path(cache) / "runs").glob("*.pt"), key=lambda p: p.stat().st_mtime)
        ckpt = checkpoint.read(run)
        m, cfg = ckpt["metrics"], ckpt["train_config"]
    print(f"{found['seconds']:.0f} s ({found['seconds'] / 60:.2f} min) from Start training to the results")
    print(f"page: {found['after']}")
    print(f"load average (1 min) at the start and the end: {load[0]:.1f}, {load[1]:.1f} on {os.cpu_count()} cores")
    print(f"checkpoint: val RMSE {m['val_rmse']:.4f} (one view) on {m.get('val_images')} held-out galaxies, "
          f"{m.get('epochs')} epochs, best {m.get('epoch')}, {m.get('seconds', 0):.0f} s in train.fit, "
          f"{m.get('device')} {m.get('precision')} {m.get('threads')} thread(s)")
    print("config: " + ", ".join(f"{k}={cfg[k]}" for k in ("model", "minutes", "lr", "batch_size", "val_fraction",
                                                           "init", "backbone_lr", "units", "subset")))


if __name__ == "__main__":
    main()
