"""A load test in the real browser: N concurrent visitors browse, open galaxies and compute
explanations while a training run goes on the same server.

    python -m benchmarks.load --sessions 10 --minutes 3 [--client protocol] [--data DIR] [--out artifacts/load.json]
    python -m benchmarks.load --client protocol --sessions 20 --processes 1 2 --minutes 2

One `streamlit run app.py` on the data (default: the real sample), its pages visited once (warm
caches), then a training run started from the Train page (all galaxies, 2 epochs, one thread as the
dashboard runs it) and N visitors, each a session of its own in one Chromium, clicking through the
dashboard as a person does (`visitor`: Browse, a page of it, a galaxy, a look-alike, Explain; a few
seconds on each page) until the time is up; or, with `--client protocol`, N visitors speaking
Streamlit's websocket protocol without a browser (the server's side alone, as when the visitors'
browsers run on their own machines). Recorded: every page's time from navigation to the end of
its run (p50 / p95), errors (timeouts, exceptions on a page), the server's resident memory before
and after, whether the server stayed up and whether the run finished with a checkpoint that loads,
and the CPU seconds spent by role (`cpu_seconds`: pages, training, browsers, the rest).

With `--processes N [N ...]` the same measurement runs once per N, each against `gz serve --processes N`
(N Streamlit processes behind nginx, each visitor kept on one by a cookie; every process warmed
directly first), and the figures are printed side by side; the CPU gets a role more (proxy: nginx)
and the result says on which process each protocol visitor landed.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

from gzcore import checkpoint, data, shipped

from . import REAL_DATA, ROOT, browser

READY = {"browse": "galaxies match", "galaxy": "Galaxies like this one", "explain": "Integrated Gradients (32 passes) · model"}
THINK = (2.0, 4.0)  # seconds a visitor looks at a page before the next click (uniform; people read longer)
OPEN = re.compile(r"^Open (\d+)$")  # Browse's buttons that open a galaxy


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def cpu_seconds(servers: set[int]) -> dict[str, float]:
    """CPU seconds used so far by role, per process from /proc (a process's count holds its ended
    threads, such as Streamlit's one thread per script run): the servers (their pages), a training
    run's process and that process's decode workers, the browsers (Chromium and Playwright's driver),
    the proxy (nginx, under gz serve) and everything else. Ended children waited for count for their
    parent's role, a server's for training (a run that ended in the time measured keeps its CPU)."""
    tick, found = os.sysconf("SC_CLK_TCK"), {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # ended meanwhile
            continue
        fields = text[text.rindex(")") + 2:].split()
        found[int(stat.parent.name)] = (text[text.index("(") + 1:text.rindex(")")], int(fields[1]),
                                        (int(fields[11]) + int(fields[12])) / tick,
                                        (int(fields[13]) + int(fields[14])) / tick)  # its ended children's
    used = dict.fromkeys(("pages", "training", "browsers", "proxy", "other"), 0.0)
    for pid, (comm, parent, seconds, children) in found.items():
        if pid in servers:
            role = "pages"
        elif parent in servers or found.get(parent, ("", 0))[1] in servers:
            role = "training"
        elif comm.startswith("nginx"):
            role = "proxy"
        elif "chrom" in comm or comm.startswith("node"):  # node: Playwright's driver
            role = "browsers"
        else:
            role = "other"
        used[role] += seconds
        used["training" if role == "pages" else role] += children
    return used


async def visitor(page, url: str, first: int, until: float, times: dict, errors: list, seed: int) -> None:
    """One visitor (a browser tab of its own session), as a person uses the dashboard: it opens a
    galaxy's link once, then clicks until `until`: Browse in the sidebar, a random page of it, a
    random galaxy there, one of its look-alikes, Explain in the sidebar; looking at each page for
    THINK seconds. Each click is timed until the page it asked for has finished its run (its own
    galaxy's heading, a new page of Browse); appends (page, seconds) and errors."""
    from playwright.async_api import expect
    rng = random.Random(seed)
    page.set_default_timeout(120_000)
    sidebar, opens = page.get_by_test_id("stSidebarNav"), page.get_by_role("button", name=OPEN)

    async def settle():
        await page.wait_for_timeout(300)
        await page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached")

    async def start():
        await page.goto(f"{url}/galaxy?galaxy={first}")
        await page.get_by_text(READY["galaxy"]).first.wait_for()
        await settle()

    async def browse():
        await sidebar.get_by_text("Browse", exact=True).click()
        await page.get_by_role("heading", name="Browse").wait_for()

    async def another_page():
        shown = await opens.first.inner_text()
        box = page.get_by_label("Page (of", exact=False)
        await box.fill(str(rng.randint(2, 250)))
        await box.press("Enter")
        await expect(opens.first).not_to_have_text(shown, timeout=120_000)

    async def open_galaxy(buttons, name_of):
        button = buttons.nth(rng.randrange(await buttons.count()))
        gid = name_of(await button.inner_text())
        await button.click()
        await page.get_by_role("heading", name=f"Galaxy {gid}", exact=True).wait_for()

    async def explain():
        gid = (await page.get_by_role("heading", name=re.compile(r"^Galaxy \d+$")).inner_text()).split()[-1]
        await sidebar.get_by_text("Explain", exact=True).click()
        await page.get_by_role("heading", name=f"Why? Galaxy {gid}").wait_for()

    steps = (("browse", browse), ("browse", another_page),
             ("galaxy", lambda: open_galaxy(opens, lambda text: OPEN.match(text.strip()).group(1))),
             ("galaxy", lambda: open_galaxy(page.locator("[class*='st-key-near_'] button"), str.strip)),
             ("explain", explain))
    await start()
    while time.time() < until:
        for name, act in steps:
            await page.wait_for_timeout(1000 * rng.uniform(*THINK))
            begun = time.perf_counter()
            try:
                await act()
                await page.get_by_text(READY[name]).first.wait_for()
                await settle()
                if await page.get_by_test_id("stException").count():
                    errors.append(f"{name}: exception on the page")
                times.setdefault(name, []).append(time.perf_counter() - begun - 0.3)  # settle waits 0.3 s
            except Exception as e:  # a timeout or a closed page: counted, the visitor goes on
                errors.append(f"{name}: {type(e).__name__}: {str(e).splitlines()[0][:160]}")
                await start()
                break


async def visitors(url: str, firsts: list[int], until: float, times: dict, errors: list) -> None:
    """One visitor per galaxy of `firsts`, each in its own browser context (its own session) of one
    Chromium driven by one Playwright: the load generator's own cost kept small."""
    from playwright.async_api import async_playwright
    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=str(browser.CHROMIUM), args=browser.ARGS)
        pages = [await (await chromium.new_context(viewport={"width": 1400, "height": 900})).new_page()
                 for _ in firsts]
        await asyncio.gather(*(visitor(page, url, first, until, times, errors, k)
                               for k, (page, first) in enumerate(zip(pages, firsts))))
        await chromium.close()


def open_page(url: str) -> tuple[dict[str, str], str | None]:
    """Open the dashboard at `url` as a browser does before its websocket: the page, then the health
    check. Returns the cookies set (gz serve's route, Streamlit's XSRF token) and the process that
    answered (gz serve's X-Upstream header; None without it)."""
    cookies: dict[str, str] = {}
    for path in ("/", "/_stcore/health"):
        with urllib.request.urlopen(urllib.request.Request(f"{url}{path}", headers=cookie_header(cookies)),
                                    timeout=120) as answer:
            upstream = answer.headers.get("X-Upstream")
            for line in answer.headers.get_all("Set-Cookie") or ():
                name, _, value = line.split(";")[0].partition("=")
                cookies[name.strip()] = value.strip()
    return cookies, upstream


def cookie_header(cookies: dict[str, str]) -> dict[str, str]:
    """{"Cookie": …} holding `cookies`, or {} when there are none."""
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())} if cookies else {}


async def protocol_visitors(url: str, ids: list[int], sessions: int, until: float, times: dict,
                            errors: list, landed: list | None = None) -> None:
    """`sessions` visitors that speak Streamlit's own protocol (its websocket, as the browser's
    front end does) and render nothing: the server's latency when the visitors' browsers run on
    their own machines. Each opens the page first and keeps its cookies on the websocket (behind gz
    serve, the route that keeps it on one process), then loops Browse -> a random galaxy -> its
    Explain page, THINK seconds on each. `landed` gets the process each visitor's page came from."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from websockets.asyncio.client import connect
    early = 2  # script_finished status FINISHED_EARLY_FOR_RERUN: the run goes on

    async def show(ws, name: str, query: str) -> None:
        ask = BackMsg()
        ask.rerun_script.page_name, ask.rerun_script.query_string = name, query
        await ws.send(ask.SerializeToString())
        while True:
            message = ForwardMsg()
            message.ParseFromString(await ws.recv())
            kind = message.WhichOneof("type")
            if kind == "delta" and message.delta.new_element.WhichOneof("type") == "exception":
                errors.append(f"{name}: exception on the page: {message.delta.new_element.exception.message[:120]}")
            if kind == "script_finished" and message.script_finished != early:
                return

    async def visitor(seed: int) -> None:
        rng = random.Random(seed)
        try:
            cookies, upstream = await asyncio.to_thread(open_page, url)
        except OSError as e:
            errors.append(f"opening the page: {type(e).__name__}: {e}")
            return
        if landed is not None:
            landed.append(upstream)
        async with connect(url.replace("http", "ws", 1) + "/_stcore/stream", subprotocols=["streamlit"],
                           additional_headers=cookie_header(cookies), max_size=None) as ws:
            while time.time() < until:
                gid = rng.choice(ids)
                for name, query in (("browse", ""), ("galaxy", f"galaxy={gid}"), ("explain", f"galaxy={gid}")):
                    await asyncio.sleep(rng.uniform(*THINK))
                    begun = time.perf_counter()
                    try:
                        await asyncio.wait_for(show(ws, name, query), 120)
                    except (asyncio.TimeoutError, OSError) as e:
                        errors.append(f"{name}: {type(e).__name__}")
                        return
                    times.setdefault(name, []).append(time.perf_counter() - begun)

    await asyncio.gather(*(visitor(k) for k in range(sessions)))


def start_training(url: str) -> None:
    """Start a run from the Train page: every galaxy, 2 epochs (the page's one thread)."""
    with browser.chromium() as page:
        browser.goto(page, f"{url}/train", "Start training")
        stop = page.locator(".st-key-train_stop button")  # the run's Stop (not the toolbar's, while a script runs)
        stop.wait_for(state="detached", timeout=600_000)  # the last run ended
        page.get_by_label("Epochs").fill("2")
        page.get_by_label("Training galaxies (0 = all)").fill("0")
        page.get_by_role("button", name="Start training").click()
        stop.wait_for()  # the run is under way
        if page.get_by_text("Another run started first").count():
            raise RuntimeError("the Train page started no run: another was still going")


@contextlib.contextmanager
def serving(env: dict, processes: int, timeout: float = 300):
    """`gz serve --processes N` on a free port with `env` added; yields its URL (a `browser.URL`
    whose `pid` is gz serve's) and {Streamlit process id: its own port} once the proxy answers."""
    port = browser.free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gzcore.cli", "serve", "--processes", str(processes),
                             "--port", str(port)], cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        deadline, url = time.time() + timeout, browser.URL(f"http://127.0.0.1:{port}")
        while not browser.healthy(url):
            if time.time() > deadline or proc.poll() is not None:
                raise RuntimeError(f"gz serve did not start: {proc.stdout.read1().decode()[-3000:]}")
            time.sleep(0.5)
        url.pid = proc.pid
        yield url, streamlit_ports(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def streamlit_ports(parent: int) -> dict[int, int]:
    """{process id: port} of the Streamlit processes `parent` started (read from their command lines)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            command = (stat.parent / "cmdline").read_bytes().decode().split("\0")
        except OSError:  # ended meanwhile
            continue
        if int(text[text.rindex(")") + 2:].split()[1]) == parent and "--server.port" in command:
            found[int(stat.parent.name)] = int(command[command.index("--server.port") + 1])
    return found


def run(folder: Path, sessions: int, minutes: float, cache: Path, client: str = "chromium",
        processes: int | None = None) -> dict:
    """One measurement: against one `streamlit run app.py`, or with `processes`, `gz serve --processes N`."""
    ids = pd.read_csv(folder / data.LABELS_FILE, usecols=["GalaxyID"]).GalaxyID.tolist()
    env = {"GZ_DATA": str(folder), "GZ_CHECKPOINT": str(shipped.folder() / "default.pt"), "GZ_CACHE": str(cache)}
    with contextlib.ExitStack() as stack:
        if processes:
            url, ports = stack.enter_context(serving(env, processes))
        else:
            url = stack.enter_context(browser.server(env, timeout=120))
            ports = {url.pid: int(url.rsplit(":", 1)[1])}
        servers = set(ports)
        with browser.chromium() as page:  # warm every process: catalogue, crops, embeddings computed once
            page.set_default_timeout(900_000)
            for port in ports.values():
                for name in READY:
                    browser.goto(page, f"http://127.0.0.1:{port}/{name}?galaxy={ids[0]}", READY[name])
        before = sum(map(rss_mb, servers))
        earlier = set((cache / "runs").glob("*.pt"))
        load_before = os.getloadavg()  # the machine's load (others' work too) before this test's
        start_training(url)
        times: dict[str, list[float]] = {}
        errors: list[str] = []
        landed: list[str | None] = []
        cpu_before, until = cpu_seconds(servers), time.time() + 60 * minutes
        firsts = [random.Random(k).choice(ids) for k in range(sessions)]
        load = visitors(url, firsts, until, times, errors) if client == "chromium" else \
            protocol_visitors(url, ids, sessions, until, times, errors, landed)
        driving = threading.Thread(target=asyncio.run, args=(load,))
        driving.start()
        time.sleep(max(0.0, until - time.time()))
        load_after = os.getloadavg()
        cpu = {role: seconds - cpu_before[role] for role, seconds in cpu_seconds(servers).items()}  # browsers open
        driving.join()
        after = sum(map(rss_mb, servers))
        deadline = time.time() + 900  # the run goes on alone after the visitors leave
        while not (finished := _finished(cache / "runs", earlier)) and time.time() < deadline:
            time.sleep(5)
        alive = all(browser.healthy(f"http://127.0.0.1:{port}") for port in ports.values())
        runs = sorted(set((cache / "runs").glob("*.pt")) - earlier)
    return {"sessions": sessions, "client": client, "processes": processes, "minutes": minutes,
            "think_s": THINK, "data": str(folder), "galaxies": len(ids),
            "visitors_per_process": {f"127.0.0.1:{port}": landed.count(f"127.0.0.1:{port}")
                                     for port in ports.values()} if processes else {},
            "pages": {name: {"visits": len(v), "p50_s": float(np.percentile(v, 50)),
                             "p95_s": float(np.percentile(v, 95))} for name, v in times.items()},
            "cpu_seconds": cpu, "page_views": sum(len(v) for v in times.values()),
            "load_average_before": load_before, "load_average_after": load_after,
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
    p.add_argument("--client", choices=("chromium", "protocol"), default="chromium",
                   help="chromium: real browsers on this machine; protocol: Streamlit's websocket alone, "
                        "as visitors whose browsers run elsewhere")
    p.add_argument("--data", type=Path, default=REAL_DATA)
    p.add_argument("--cache", type=Path, default=Path("artifacts/load-cache"))
    p.add_argument("--out", type=Path, default=Path("artifacts/load.json"))
    p.add_argument("--processes", type=int, nargs="+", metavar="N",
                   help="measure against `gz serve --processes N` (nginx in front), once per N given, "
                        "side by side (e.g. --processes 1 2); without it, one `streamlit run app.py`")
    args = p.parse_args(argv)
    if not args.processes:
        result = run(args.data, args.sessions, args.minutes, args.cache, args.client)
    else:
        result = {"runs": [run(args.data, args.sessions, args.minutes, args.cache, args.client, n)
                           for n in args.processes]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    if args.processes:
        print(side_by_side(result["runs"]))


def side_by_side(runs: list[dict]) -> str:
    """The runs' figures as a Markdown table, one column per run."""
    def pages(r, name):
        page = r["pages"].get(name)
        return f"{page['p50_s']:.2f} / {page['p95_s']:.2f} s" if page else "—"
    rows = [("page views", lambda r: str(r["page_views"]))]
    rows += [(f"{name.title()} p50 / p95", lambda r, name=name: pages(r, name)) for name in READY]
    rows += [("errors", lambda r: str(len(r["errors"]))),
             ("visitors per process", lambda r: " / ".join(map(str, r["visitors_per_process"].values())) or "—"),
             ("CPU s: pages / training / proxy / other",
              lambda r: " / ".join(f"{r['cpu_seconds'][k]:.0f}" for k in ("pages", "training", "proxy", "other"))),
             ("load average (1 min) before / at the end", lambda r: f"{r['load_average_before'][0]:.1f} / "
                                                                    f"{r['load_average_after'][0]:.1f}"),
             ("server memory", lambda r: f"{r['server_mb_before']:.0f} → {r['server_mb_after']:.0f} MB"),
             ("servers up, run's checkpoint loads", lambda r: f"{r['server_up']}, {r['run_checkpoint_loads']}")]
    head = [f"{r['sessions']} {r['client']} visitors, {r['processes'] or 1} process(es)" for r in runs]
    lines = ["| | " + " | ".join(head) + " |", "|---" * (len(runs) + 1) + "|"]
    lines += ["| " + label + " | " + " | ".join(cell(r) for r in runs) + " |" for label, cell in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
