"""The soak test of issue 27: N protocol visitors clicking through every page of the dashboard for a
long time, an upload on "Your galaxy" in each round, while a training run goes on the same server.

    python -m benchmarks.soak --minutes 30 [--sessions 10] [--data DIR] [--out artifacts/soak.json]

One `streamlit run app.py` on the data (default: the real sample), its log written to
artifacts/soak-server.log (read as it grows: a pipe nobody reads would stall a long-running server).
Every page is visited once first (warm caches, not timed), then a training run is started from the
Train page (load.start_training: all galaxies, 2 epochs) and, while it lasts, a new one each time the
last has finished (so that one is going throughout), and N visitors speaking Streamlit's websocket
protocol (as benchmarks.load's `--client protocol`) go round every page of navigation.PAGES in
sidebar order, THINK seconds on each, a random galaxy per round for Galaxy and Explain. On Your
galaxy each round uploads an image as the browser does: a `file_urls_request` on the websocket, a
PUT of the file to `/_stcore/upload_file/<session>/<file>` (XSRF token from the cookie), then a
rerun with the uploader's widget state; one round a training JPEG of the data (the page recognises
it), the next the same galaxy mirrored as a PNG (a galaxy it does not know).

Recorded: every page's time (p50 / p95) and visits, page errors (an exception element on a page, a
timeout, a lost connection: the visitor reconnects and goes on), the server's resident memory every
30 s (VmRSS of the Streamlit process alone and with its children: the training run's process and its
workers), whether the server answered its health check at every sample, the RSS at minute 5 and at
the end and their ratio, the training runs started and finished, and the machine's load average.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from gzcore import data, shipped
from gzcore.dashboard import navigation

from . import REAL_DATA, ROOT, browser
from .load import THINK, _finished, cookie_header, open_page, rss_mb, start_training

SAMPLE_S = 30
QUERIES = {"galaxy": "galaxy={gid}", "explain": "galaxy={gid}", "vote": "room=soak", "kiosk": "every=10"}
FRAGMENT_DONE, EARLY = 3, 2  # script_finished statuses that do not end the page's run


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (from /proc's parent ids)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(text[text.rindex(")") + 2:].split()[1])
    found, frontier = [pid], [pid]
    while frontier:
        frontier = [p for p, parent in parents.items() if parent in frontier]
        found += frontier
    return found


def memory(pid: int) -> tuple[float, float]:
    """(MB) VmRSS of `pid` alone and of `pid` with all its descendants."""
    total = 0.0
    for p in descendants(pid):
        try:
            total += rss_mb(p)
        except (OSError, StopIteration):  # ended meanwhile, or a zombie without VmRSS
            pass
    return rss_mb(pid), total


def upload_bytes(folder: Path, gid: int, mirrored: bool) -> tuple[str, bytes]:
    """A galaxy's training JPEG as it is, or mirrored and saved as PNG."""
    path = folder / "images_training_rev1" / f"{gid}.jpg"
    if not mirrored:
        return path.name, path.read_bytes()
    from PIL import Image, ImageOps
    out = io.BytesIO()
    ImageOps.mirror(Image.open(path)).save(out, format="PNG")
    return f"{gid}-mirrored.png", out.getvalue()


def put_file(url: str, cookies: dict, upload_url: str, name: str, content: bytes) -> int:
    """PUT `content` to Streamlit's upload endpoint as the browser's uploader does (multipart, one
    field "file", the XSRF token from the cookie in X-Xsrftoken). Returns the HTTP status."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    headers = {**cookie_header(cookies), "Content-Type": f"multipart/form-data; boundary={boundary}"}
    if "_streamlit_xsrf" in cookies:
        headers["X-Xsrftoken"] = cookies["_streamlit_xsrf"]
    with urllib.request.urlopen(urllib.request.Request(url + upload_url, data=body, headers=headers, method="PUT"),
                                timeout=120) as answer:
        return answer.status


async def soak_visitors(url: str, folder: Path, ids: list[int], sessions: int, until: float, times: dict,
                        errors: list, seen: dict, timeout: float = 120, rounds: int | None = None) -> None:
    """`sessions` protocol visitors, each going round every page (and an upload) until `until` or
    for `rounds` rounds. Appends (page, seconds) to `times`, errors to `errors`; `seen` gets each
    page's first heading (which page ran) and the uploads' outcomes."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from websockets.asyncio.client import connect

    async def show(ws, name: str, query: str, got: dict, state=None) -> None:
        """Ask for page `name` and read the messages until its run finished; `got` collects the
        session id, the uploader's widget id, headings, error alerts and texts shown."""
        ask = BackMsg()
        ask.rerun_script.page_name, ask.rerun_script.query_string = name, query
        if state is not None:
            ask.rerun_script.widget_states.widgets.append(state)
        await ws.send(ask.SerializeToString())
        while True:
            message = ForwardMsg()
            message.ParseFromString(await ws.recv())
            kind = message.WhichOneof("type")
            if kind == "new_session":
                got["session"] = message.new_session.initialize.session_id
            elif kind == "file_urls_response":
                got["file_urls"] = message.file_urls_response
            elif kind == "delta" and message.delta.WhichOneof("type") == "new_element":
                element = message.delta.new_element
                what = element.WhichOneof("type")
                if what == "exception":
                    errors.append(f"{name or 'home'}: exception on the page: {element.exception.type}: "
                                  f"{element.exception.message[:160]}")
                elif what == "file_uploader":
                    got["uploader"] = element.file_uploader.id
                elif what == "heading":
                    got.setdefault("heading", element.heading.body)
                elif what == "alert":
                    got.setdefault("alerts", []).append(element.alert.body[:160])
                elif what == "markdown":
                    got.setdefault("texts", []).append(element.markdown.body[:200])
            if kind == "script_finished" and message.script_finished not in (EARLY, FRAGMENT_DONE):
                return

    async def upload(ws, cookies: dict, got: dict, rng: random.Random, mirrored: bool) -> None:
        """An upload on Your galaxy, as the browser does it (see the module's docstring)."""
        name, content = upload_bytes(folder, rng.choice(ids), mirrored)
        ask = BackMsg()
        ask.file_urls_request.request_id = uuid.uuid4().hex
        ask.file_urls_request.file_names.append(name)
        ask.file_urls_request.session_id = got["session"]
        got.pop("file_urls", None)
        await ws.send(ask.SerializeToString())
        while "file_urls" not in got:
            message = ForwardMsg()
            message.ParseFromString(await ws.recv())
            if message.WhichOneof("type") == "file_urls_response":
                got["file_urls"] = message.file_urls_response
        urls = got["file_urls"].file_urls[0]
        status = await asyncio.to_thread(put_file, url, cookies, urls.upload_url, name, content)
        from streamlit.proto.WidgetStates_pb2 import WidgetState
        state = WidgetState(id=got["uploader"])
        info = state.file_uploader_state_value.uploaded_file_info.add()
        info.name, info.size, info.file_id = name, len(content), urls.file_id
        info.file_urls.CopyFrom(urls)
        after: dict = {}
        await show(ws, "your_galaxy", "", after, state)
        texts = " ".join(after.get("texts", []) + after.get("alerts", []))
        outcome = ("known" if "of the loaded data" in texts else "shown") if "Upload an image" not in texts \
            else "not taken"
        seen.setdefault("uploads", {}).setdefault(f"{'png-mirrored' if mirrored else 'jpeg'}: {outcome}", 0)
        seen["uploads"][f"{'png-mirrored' if mirrored else 'jpeg'}: {outcome}"] += 1
        if status not in (200, 204) or outcome == "not taken":
            errors.append(f"your_galaxy upload: HTTP {status}, {outcome}")

    async def visitor(seed: int) -> None:
        rng, done = random.Random(seed), 0
        while time.time() < until and (rounds is None or done < rounds):
            try:
                cookies, _ = await asyncio.to_thread(open_page, url)
            except OSError as e:
                errors.append(f"opening the page: {type(e).__name__}: {e}")
                await asyncio.sleep(10)
                continue
            try:
                async with connect(url.replace("http", "ws", 1) + "/_stcore/stream", subprotocols=["streamlit"],
                                   additional_headers=cookie_header(cookies), max_size=None) as ws:
                    while time.time() < until and (rounds is None or done < rounds):
                        gid = rng.choice(ids)
                        for page in navigation.PAGES:
                            if time.time() >= until and rounds is None:
                                break
                            name = page.url_path
                            query = QUERIES.get(page.name, "").format(gid=gid)
                            await asyncio.sleep(rng.uniform(*THINK) if rounds is None else 0)
                            got: dict = {}
                            for label, act in ((page.name, lambda: show(ws, name, query, got)),
                                               *((("your_galaxy upload", lambda: upload(ws, cookies, got, rng,
                                                                                          bool(done % 2))),)
                                                 if page is navigation.YOUR_GALAXY else ())):
                                begun = time.perf_counter()
                                try:
                                    await asyncio.wait_for(act(), timeout)
                                except asyncio.TimeoutError:
                                    errors.append(f"{label}: timeout after {timeout:.0f} s")
                                    raise
                                times.setdefault(label, []).append(time.perf_counter() - begun)
                            seen.setdefault("headings", {}).setdefault(page.name, got.get("heading"))
                        done += 1
            except (asyncio.TimeoutError, OSError, Exception) as e:  # noqa: BLE001 — counted, then reconnect
                if not isinstance(e, asyncio.TimeoutError):
                    errors.append(f"connection: {type(e).__name__}: {str(e)[:160]}")
                await asyncio.sleep(2)

    await asyncio.gather(*(visitor(k) for k in range(sessions)))


def serve(env: dict, log: Path, timeout: float = 300) -> tuple[subprocess.Popen, browser.URL]:
    """`streamlit run app.py` as browser.server starts it, its output to `log` (not a pipe)."""
    port = browser.free_port()
    log.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
                             "--server.headless", "true", "--server.port", str(port),
                             "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
                            cwd=ROOT, env={**os.environ, **env}, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline, url = time.time() + timeout, browser.URL(f"http://127.0.0.1:{port}")
    while not browser.healthy(url):
        if time.time() > deadline or proc.poll() is not None:
            proc.terminate()
            raise RuntimeError(f"streamlit did not start: {log.read_text()[-2000:]}")
        time.sleep(0.5)
    url.pid = proc.pid
    return proc, url


def run(folder: Path, sessions: int, minutes: float, cache: Path, out: Path, final_wait: float = 120) -> dict:
    ids = pd.read_csv(folder / data.LABELS_FILE, usecols=["GalaxyID"]).GalaxyID.tolist()
    env = {"GZ_DATA": str(folder), "GZ_CHECKPOINT": str(shipped.folder() / "default.pt"), "GZ_CACHE": str(cache)}
    proc, url = serve(env, out.with_name(out.stem + "-server.log"))
    result: dict = {"sessions": sessions, "minutes": minutes, "think_s": THINK, "data": str(folder),
                    "galaxies": len(ids), "cpus": os.cpu_count(), "pages_list": [p.name for p in navigation.PAGES]}
    try:
        begun = time.time()
        warm_errors: list = []
        seen: dict = {}
        asyncio.run(soak_visitors(url, folder, ids, 1, time.time() + 1800, {}, warm_errors, seen,
                                  timeout=1200, rounds=1))
        result["warm_s"], result["warm_errors"] = time.time() - begun, warm_errors
        result["load_average_before"] = os.getloadavg()
        earlier = set((cache / "runs").glob("*.pt"))
        start_training(url)
        runs_started = 1
        times: dict[str, list[float]] = {}
        errors: list[str] = []
        samples: list[dict] = []
        start = time.time()
        until = start + 60 * minutes
        driving = threading.Thread(target=asyncio.run,
                                   args=(soak_visitors(url, folder, ids, sessions, until, times, errors, seen),))
        driving.start()

        def sample() -> None:
            alive = browser.healthy(url) and proc.poll() is None
            try:
                alone, total = memory(proc.pid)
            except (OSError, StopIteration):
                alone = total = None
            samples.append({"t_s": round(time.time() - start, 1), "server_mb": alone, "with_children_mb": total,
                            "up": alive, "load_1min": os.getloadavg()[0],
                            "page_views": sum(len(v) for v in times.values()), "errors": len(errors)})
            partial = {**result, "samples": samples, "errors_so_far": errors[-20:], "partial": True}
            out.write_text(json.dumps(partial, indent=1))
            print(json.dumps(samples[-1]), flush=True)

        sample()
        while time.time() < until:
            time.sleep(max(0.0, min(SAMPLE_S - (time.time() - start) % SAMPLE_S, until - time.time())))
            sample()
            if _finished(cache / "runs", earlier) and until - time.time() > 180:  # keep a run going
                earlier = set((cache / "runs").glob("*.pt"))
                try:
                    start_training(url)
                    runs_started += 1
                except Exception as e:  # noqa: BLE001
                    errors.append(f"train: could not start another run: {type(e).__name__}: {str(e)[:160]}")
        driving.join()
        deadline = time.time() + final_wait  # the last run may finish alone after the visitors leave
        while not (finished := _finished(cache / "runs", earlier)) and time.time() < deadline:
            time.sleep(5)
        sample()
    finally:
        alive_at_end = browser.healthy(url) and proc.poll() is None
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()

    def at(minute: float) -> dict:
        return min(samples, key=lambda s: abs(s["t_s"] - 60 * minute))

    five, end = at(min(5, minutes / 2)), [s for s in samples if s["t_s"] <= 60 * minutes + 1][-1]
    result.update({
        "pages": {name: {"visits": len(v), "p50_s": float(np.percentile(v, 50)), "p95_s": float(np.percentile(v, 95)),
                         "max_s": float(max(v))} for name, v in times.items()},
        "page_views": sum(len(v) for v in times.values()), "headings_seen": seen.get("headings", {}),
        "uploads": seen.get("uploads", {}), "errors": errors, "error_count": len(errors),
        "rss_at_5min": five, "rss_at_end": end,
        "rss_ratio_server": end["server_mb"] / five["server_mb"],
        "rss_ratio_with_children": end["with_children_mb"] / five["with_children_mb"],
        "server_up_every_sample": all(s["up"] for s in samples), "server_up_at_end": alive_at_end,
        "training_runs_started": runs_started, "last_run_finished": finished,
        "training_runs_finished": runs_started - 1 + int(finished),  # another is started only once the last finished
        "load_average_after": os.getloadavg(), "samples": samples, "partial": False})
    return result


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n")[0])
    p.add_argument("--sessions", type=int, default=10)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--data", type=Path, default=REAL_DATA)
    p.add_argument("--cache", type=Path, default=Path("artifacts/soak-cache"))
    p.add_argument("--out", type=Path, default=Path("artifacts/soak.json"))
    p.add_argument("--final-wait", type=float, default=120, help="seconds the last training run is waited for")
    args = p.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = run(args.data, args.sessions, args.minutes, args.cache, args.out, args.final_wait)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=1))


if __name__ == "__main__":
    main()
