"""Server CPU per page view, caches warm: Browse, Galaxy and Explain (saliency) driven through
Streamlit's websocket protocol (no browser), the server process's CPU seconds counted around each view.

    python -m benchmarks.bench_pages [--data DIR] [--views 20] [--repeats 3] [--before HEAD] [--root DIR]

One `streamlit run app.py` of this checkout (or of --root DIR) on the data (default: the real sample)
and the shipped model, and with `--before REF` a second one of the project as committed at REF
(`git archive` into a temporary folder: nothing in this checkout changes; or a folder), both up at once, on the
same model file and GZ_CACHE folder (the caches on disk are keyed by the model's path). Each is
warmed: for each of the `views` galaxies (a fixed random sample) a session of its own opens Browse,
Galaxy and Explain with ?galaxy=ID until each page's text has come (load.READY): the catalogue,
embeddings, thumbnails, each galaxy's image and saliency maps are then in the server's caches. Then
`repeats` rounds, the servers' turns alternating: for each galaxy a new session (a visitor's deep
link, set up before the clock starts) views Browse, Galaxy and Explain; a view runs from the request
to Streamlit's script_finished and the fetch of its st.image files (as a browser asks for them),
plus SETTLE seconds of the server's trailing work. One more session stays connected to each server
throughout, as other visitors' do (Streamlit forgets its compiled scripts when the last one leaves).
Reported per page: the server process's CPU seconds per view (utime + stime of all its threads,
/proc/PID/stat), the median over the views of each round and the median of the rounds; the wall time
per view likewise; the kilobytes and image files per view.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path

import pandas as pd

from . import REAL_DATA, ROOT
from .browser import healthy
from .load import READY

PAGES = ("browse", "galaxy", "explain")
SETTLE = 0.25     # seconds after script_finished still counted to a view (the server's trailing work)
PORTS = range(8700, 8800)


def _port() -> int:
    for port in random.Random(os.getpid()).sample(list(PORTS), len(PORTS)):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS}")


@contextlib.contextmanager
def server(root: Path, env: dict, timeout: float = 120):
    """`streamlit run app.py` of the project at `root` (its own gzcore: the working directory comes
    first on sys.path); yields (base URL, pid)."""
    port = _port()
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(root / "app.py"),
                             "--server.headless", "true", "--server.port", str(port),
                             "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
                            cwd=root, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while not healthy(url):
            if time.time() > deadline or proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"streamlit did not start: {log.read().decode()[-2000:]}")
            time.sleep(0.2)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def server_cpu(pid: int) -> float:
    """The server process's CPU seconds so far: utime + stime of /proc/PID/stat, which hold all its
    threads, ended ones too (Streamlit's one thread per script run), as load.cpu_seconds reads them."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def view(ws, url: str, pid: int, name: str, query: str, timeout: float) -> dict:
    """One page view in the session of `ws`, its images fetched from `url` as a browser does:
    {cpu_s, wall_s, bytes, media}; raises when the page shows an exception or its READY text never comes."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    early = 2  # script_finished FINISHED_EARLY_FOR_RERUN: the run goes on
    ask = BackMsg()
    ask.rerun_script.page_name, ask.rerun_script.query_string = name, query
    cpu, begun, received, seen, media = server_cpu(pid), time.perf_counter(), 0, b"", []

    async def run():
        nonlocal received, seen
        while True:
            blob = await ws.recv()
            received += len(blob)
            seen += blob if READY[name].encode() in blob else b""
            message = ForwardMsg()
            message.ParseFromString(blob)
            kind = message.WhichOneof("type")
            element = message.delta.new_element if kind == "delta" else None
            if element is not None and element.WhichOneof("type") == "exception":
                raise RuntimeError(f"{name}?{query}: {element.exception.message[:200]}")
            if element is not None and element.WhichOneof("type") == "imgs":
                media.extend(image.url for image in element.imgs.imgs)
            if kind == "script_finished" and message.script_finished != early:
                return
    await ws.send(ask.SerializeToString())
    await asyncio.wait_for(run(), timeout)
    for address in media:  # st.image's files, as the browser asks for them once the elements arrive
        received += len(await asyncio.to_thread(lambda a=address: urllib.request.urlopen(url + a, timeout=30).read()))
    wall = time.perf_counter() - begun
    await asyncio.sleep(SETTLE)
    if not seen:
        raise RuntimeError(f"{name}?{query}: finished without {READY[name]!r}")
    return {"cpu_s": server_cpu(pid) - cpu, "wall_s": wall, "bytes": received, "media": len(media)}


def _connect(url: str):
    from websockets.asyncio.client import connect
    return connect(url.replace("http", "ws", 1) + "/_stcore/stream", subprotocols=["streamlit"], max_size=None)


async def visit(url: str, pid: int, gid: int, timeout: float = 120) -> dict[str, dict]:
    """A new session (a visitor's deep link to galaxy `gid`) viewing each page once."""
    async with _connect(url) as ws:
        await asyncio.sleep(0.3)  # the session is set up before the first view is counted
        return {name: await view(ws, url, pid, name, f"galaxy={gid}", timeout) for name in PAGES}


async def measure(servers: dict, galaxies: list[int], repeats: int) -> dict[str, list]:
    """Warm each server, then `repeats` rounds of visits, the servers' turns alternating. A session
    stays connected to each server throughout, as other visitors' do: Streamlit forgets its
    compiled page scripts whenever the last session leaves."""
    async with contextlib.AsyncExitStack() as stack:
        for side, (url, pid) in servers.items():
            await stack.enter_async_context(_connect(url))
            started = time.perf_counter()
            await visit(url, pid, galaxies[0], timeout=3600)  # cold: catalogue, embeddings
            for gid in galaxies[1:]:
                await visit(url, pid, gid)
            print(f"{side}: warm in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        rounds = {side: [] for side in servers}
        for r in range(repeats):
            for side in (list(servers) if r % 2 == 0 else list(servers)[::-1]):
                rounds[side].append([await visit(*servers[side], gid) for gid in galaxies])
    return rounds


def before_tree(ref: str, into: Path) -> Path:
    """The project as committed at `ref`, unpacked into `into` (git archive: no checkout here)."""
    blob = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    return into


def run(folder: Path, views: int, repeats: int, cache: Path, before: str | None = None,
        root: Path = ROOT, checkpoint: Path = ROOT / "checkpoints" / "default.pt") -> dict:
    ids = pd.read_csv(folder / "training_solutions_rev1.csv", usecols=["GalaxyID"]).GalaxyID.tolist()
    galaxies = random.Random(0).sample(ids, views)
    roots = {"after": root}
    with contextlib.ExitStack() as stack:
        if before and Path(before, "app.py").is_file():  # a folder: the project as it is there
            roots = {"before": Path(before).resolve(), **roots}
        elif before:
            roots = {"before": before_tree(before, Path(stack.enter_context(tempfile.TemporaryDirectory(
                prefix="bench-pages-")))), **roots}
        env = {"GZ_DATA": str(folder), "GZ_CHECKPOINT": str(checkpoint), "GZ_CACHE": str(cache)}
        servers = {side: stack.enter_context(server(path, env)) for side, path in roots.items()}
        rounds = asyncio.run(measure(servers, galaxies, repeats))
    result = {"data": str(folder), "root": str(root), "checkpoint": str(checkpoint), "views": views,
              "repeats": repeats, "settle_s": SETTLE, "galaxies": galaxies, "before": before, "sides": {}}
    for side, done in rounds.items():
        pages = {}
        for name in PAGES:
            def per_round(field):
                return [statistics.median(v[name][field] for v in one) for one in done]
            cpu, wall = per_round("cpu_s"), per_round("wall_s")
            pages[name] = {"cpu_s": statistics.median(cpu), "cpu_s_rounds": cpu,
                           "cpu_s_mean": statistics.mean(v[name]["cpu_s"] for one in done for v in one),
                           "wall_s": statistics.median(wall), "wall_s_rounds": wall,
                           "kb": statistics.median(per_round("bytes")) / 1024,
                           "images": statistics.median(per_round("media"))}
        result["sides"][side] = pages
    return result


def table(result: dict) -> str:
    lines = [f"{'page':<8} {'side':<7} {'CPU-s/view':>10} {'(rounds)':<24} {'mean':>6} {'wall s':>7} {'KB':>7}"]
    for name in PAGES:
        for side, pages in result["sides"].items():
            p = pages[name]
            lines.append(f"{name:<8} {side:<7} {p['cpu_s']:>10.3f} "
                         f"{'/'.join(f'{c:.3f}' for c in p['cpu_s_rounds']):<24} {p['cpu_s_mean']:>6.3f} "
                         f"{p['wall_s']:>7.3f} {p['kb']:>7.0f}")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_pages", description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=REAL_DATA)
    p.add_argument("--views", type=int, default=20, help="galaxies, each viewed on every page per round")
    p.add_argument("--repeats", type=int, default=3, help="rounds over the galaxies")
    p.add_argument("--before", metavar="REF", help="also measure the project as committed at REF (e.g. HEAD), "
                                                   "or as it is in the folder REF")
    p.add_argument("--root", type=Path, default=ROOT,
                   help="the project to measure as 'after' (default: this checkout)")
    p.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "default.pt",
                   help="the model, the same file for both sides (the caches on disk are keyed by its path)")
    p.add_argument("--cache", type=Path, default=Path("artifacts/pages-cache"), help="GZ_CACHE of the servers")
    p.add_argument("--out", type=Path, default=Path("artifacts/bench_pages.json"))
    args = p.parse_args(argv)
    result = run(args.data, args.views, args.repeats, args.cache.resolve(), args.before,
                 args.root.resolve(), args.checkpoint.resolve())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(table(result))


if __name__ == "__main__":
    main()
