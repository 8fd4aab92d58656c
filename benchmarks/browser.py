"""Drive the dashboard as a user would: `streamlit run app.py` in a subprocess and Debian's Chromium
through Playwright (tests/test_browser.py and bench_dashboard share these; the product never imports
them)."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from benchmarks import ROOT

CHROMIUM = Path("/usr/bin/chromium")  # `playwright install` cannot download browsers offline
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class URL(str):
    """A server's base URL, with the server's process id (`pid`)."""
    pid: int


@contextlib.contextmanager
def server(env: dict, timeout: float = 60):
    """`streamlit run app.py` with `env` added; yields its base URL (a `URL`) once its health check
    answers."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
                             "--server.headless", "true", "--server.port", str(port),
                             "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
                            cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        deadline, url = time.time() + timeout, URL(f"http://127.0.0.1:{port}")
        while not healthy(url):
            if time.time() > deadline or proc.poll() is not None:
                raise RuntimeError(f"streamlit did not start: {proc.stdout.read1().decode()[-2000:]}")
            time.sleep(0.2)
        url.pid = proc.pid
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def healthy(url: str) -> bool:
    """Whether the server at `url` answers its health check."""
    try:
        urllib.request.urlopen(f"{url}/_stcore/health", timeout=1)
        return True
    except OSError:
        return False


@contextlib.contextmanager
def chromium(width: int = 1400, height: int = 900):
    """A Playwright page in Debian's Chromium."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.set_default_timeout(120_000)
        try:
            yield page
        finally:
            browser.close()


def settle(page, timeout: float = 120_000) -> None:
    """Wait until Streamlit has finished the script run (its status widget is gone)."""
    page.wait_for_timeout(300)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=timeout)


def goto(page, url: str, ready: str) -> None:
    """Open `url` and wait for the text `ready`, then for the run to finish."""
    page.goto(url)
    page.get_by_text(ready).first.wait_for()
    settle(page)


def snap(page, path: Path) -> None:
    """A screenshot of the whole page (Streamlit scrolls inside its main block, so grow the viewport)."""
    size = page.viewport_size
    height = page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": min(max(height, size["height"]), 8000)})
    page.wait_for_timeout(800)
    page.screenshot(path=path)
    page.set_viewport_size(size)
