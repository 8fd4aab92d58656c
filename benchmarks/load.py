"""A load test in the real browser: N concurrent visitors browse, open galaxies and compute
explanations while a training run goes on the same server.

    python -m benchmarks.load --sessions 10 --minutes 3 [--data DIR] [--out artifacts/load.json]

One `streamlit run app.py` on the data (default: the real sample), its pages visited once (warm
caches), then a training run started from the Train page (all galaxies, 2 epochs, one thread as the
dashboard runs it) and N Chromium visitors, each in its own thread, looping Browse -> a random
galaxy -> Explain until the time is up. Recorded: every page's time from navigation to the end of
its run (p50 / p95), errors (timeouts, exceptions on a page), the server's resident memory before
and after, whether the server stayed up and whether the run finished with a checkpoint that loads.
"""
from __future__ import annotations

import argparse
import json
import random
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

from gzcore import checkpoint, data, shipped

from . import REAL_DATA, browser

VISITS = (("browse", "", "galaxies match"),
          ("galaxy", "?galaxy={gid}", "Galaxies like this one"),
          ("explain", "?galaxy={gid}", "Saliency (fast) · model"))


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def visitor(url: str, ids: list[int], until: float, times: dict, errors: list, seed: int) -> None:
    """One browser session looping over VISITS until `until`, appending (page, seconds) and errors."""
    rng = random.Random(seed)
    with browser.chromium() as page:
        page.set_default_timeout(120_000)
        while time.time() < until:
            gid = rng.choice(ids)
            for name, query, ready in VISITS:
                start = time.perf_counter()
                try:
                    page.goto(f"{url}/{name}{query.format(gid=gid)}")
                    page.get_by_text(ready).first.wait_for()
                    browser.settle(page)
                    if page.get_by_test_id("stException").count():
                        errors.append(f"{name}: exception on the page")
                    times.setdefault(name, []).append(time.perf_counter() - start - 0.3)  # settle waits 0.3 s
                except Exception as e:  # a timeout or a closed page: counted, the visitor goes on
                    errors.append(f"{name}: {type(e).__name__}: {str(e).splitlines()[0][:160]}")


def start_training(url: str) -> None:
    """Start a run from the Train page: every galaxy, 2 epochs (the page's one thread)."""
    with browser.chromium() as page:
        browser.goto(page, f"{url}/train", "Start training")
        page.get_by_label("Epochs").fill("2")
        page.get_by_label("Training galaxies (0 = all)").fill("0")
        page.get_by_role("button", name="Start training").click()
        page.get_by_role("button", name="Stop").wait_for()  # the run is under way


def run(folder: Path, sessions: int, minutes: float, cache: Path) -> dict:
    ids = pd.read_csv(folder / data.LABELS_FILE, usecols=["GalaxyID"]).GalaxyID.tolist()
    env = {"GZ_DATA": str(folder), "GZ_CHECKPOINT": str(shipped.folder() / "default.pt"), "GZ_CACHE": str(cache)}
    with browser.server(env, timeout=120) as url:
        with browser.chromium() as page:  # warm: catalogue, crops, embeddings computed once
            page.set_default_timeout(900_000)
            for name, query, ready in VISITS:
                browser.goto(page, f"{url}/{name}{query.format(gid=ids[0])}", ready)
        before = rss_mb(url.pid)
        earlier = set((cache / "runs").glob("*.pt"))
        start_training(url)
        times: dict[str, list[float]] = {}
        errors: list[str] = []
        until = time.time() + 60 * minutes
        threads = [threading.Thread(target=visitor, args=(url, ids, until, times, errors, k)) for k in range(sessions)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        after = rss_mb(url.pid)
        deadline = time.time() + 900  # the run goes on alone after the visitors leave
        while not (finished := _finished(cache / "runs", earlier)) and time.time() < deadline:
            time.sleep(5)
        alive = browser.healthy(url)
        runs = sorted(set((cache / "runs").glob("*.pt")) - earlier)
    return {"sessions": sessions, "minutes": minutes, "data": str(folder), "galaxies": len(ids),
            "pages": {name: {"visits": len(v), "p50_s": float(np.percentile(v, 50)),
                             "p95_s": float(np.percentile(v, 95))} for name, v in times.items()},
            "errors": errors, "server_mb_before": before, "server_mb_after": after,
            "memory_growth": after / before, "server_up": alive, "run_checkpoint_loads": finished,
            "run": str(runs[-1].name) if runs else None}


def _finished(runs: Path, earlier: set, epochs: int = 2) -> bool:
    """Whether the run started here (a checkpoint in `runs` not among `earlier`) wrote its final
    checkpoint (all its epochs), and it loads."""
    found = sorted(set(runs.glob("*.pt")) - earlier)
    try:
        return bool(found) and checkpoint.read(found[-1])["metrics"].get("epochs") == epochs and \
            bool(checkpoint.load(found[-1]))
    except checkpoint.CheckpointError:
        return False


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__.split("\n")[0])
    p.add_argument("--sessions", type=int, default=10)
    p.add_argument("--minutes", type=float, default=3.0)
    p.add_argument("--data", type=Path, default=REAL_DATA)
    p.add_argument("--cache", type=Path, default=Path("artifacts/load-cache"))
    p.add_argument("--out", type=Path, default=Path("artifacts/load.json"))
    args = p.parse_args(argv)
    result = run(args.data, args.sessions, args.minutes, args.cache)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
