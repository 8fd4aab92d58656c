"""gz serve: several Streamlit processes behind nginx, each visitor kept on one by a cookie; its
websocket, its uploads (XSRF protection on) and its pages reach the process that holds its session."""
import asyncio
import os
import re
import shutil
import signal
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pandas as pd
import pytest

from benchmarks import load
from gzcore import data, serve, synthetic
from gzcore.dashboard import choices


def _nginx_installed() -> bool:
    try:
        return bool(serve.nginx_binary())
    except serve.ServeError:
        return False


needs_nginx = pytest.mark.skipif(not _nginx_installed(),
                                 reason="nginx is not installed (apt-get install nginx-light; .ci/run installs it)")


@needs_nginx
@pytest.mark.parametrize("base", ["", "/gz"])
def test_the_config_is_valid_and_names_every_process(tmp_path, base):
    conf = serve.write_config(tmp_path, 8650, [8661, 8662, 8663], base=serve.base_path(base))
    serve.check_config(conf)  # nginx -t
    text = conf.read_text()
    assert re.findall(r"server 127\.0\.0\.1:(\d+);", text) == ["8661", "8662", "8663"]
    assert "hash $gzroute consistent;" in text and "listen 127.0.0.1:8650;" in text
    assert f"location {base}/ {{" in text and f"Path={base}/;" in text
    assert str(tmp_path) in text and "/var/" not in text  # nothing outside its folder: no root needed


def test_a_public_config_listens_everywhere_and_hides_the_process(tmp_path):
    text = serve.nginx_config(tmp_path, 8650, [8661], public=True)
    assert "listen 8650;" in text and "X-Upstream" not in text


def test_missing_nginx_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda *a, **k: None)
    with pytest.raises(serve.ServeError, match="apt-get install nginx-light"):
        serve.nginx_binary()


@pytest.mark.parametrize("value", ["../etc", "gz; evil", "a b"])
def test_a_base_path_outside_plain_names_is_refused(value):
    with pytest.raises(serve.ServeError, match="--base-url-path"):
        serve.base_path(value)


def _status(url: str, body: bytes = b"", headers: dict | None = None, method: str = "GET") -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body or None, headers=headers or {},
                                                           method=method), timeout=60) as answer:
            return answer.status
    except urllib.error.HTTPError as e:
        return e.code


async def _uploads(url: str, cookies: dict, tries) -> list[int]:
    """Open a session of the dashboard through the proxy with `cookies` (its websocket, the Home page
    run), ask for an upload URL for one file as st.file_uploader does, and while the session is open,
    `tries(upload path)`: the HTTP statuses it got."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from websockets.asyncio.client import connect
    async with connect(url.replace("http", "ws", 1) + "/_stcore/stream", subprotocols=["streamlit"],
                       additional_headers=load.cookie_header(cookies), max_size=None) as ws:
        ask = BackMsg()
        ask.rerun_script.query_string = ""
        await ws.send(ask.SerializeToString())
        message = ForwardMsg()
        while message.WhichOneof("type") != "new_session":
            message.ParseFromString(await ws.recv())
        ask = BackMsg()
        ask.file_urls_request.request_id = "marks"
        ask.file_urls_request.session_id = message.new_session.initialize.session_id
        ask.file_urls_request.file_names.append("marks.csv")
        await ws.send(ask.SerializeToString())
        while message.WhichOneof("type") != "file_urls_response":
            message.ParseFromString(await ws.recv())
        return await asyncio.to_thread(tries, message.file_urls_response.file_urls[0].upload_url)


@needs_nginx
@pytest.mark.slow
def test_each_visitor_stays_on_one_of_two_processes(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("GZ_CACHE", str(cache))  # the default universe, rendered here rather than by a page
    universe = synthetic.generate(choices.universe_dir(), choices.UNIVERSE_N, seed=choices.UNIVERSE_SEED)
    ids = pd.read_csv(universe / data.LABELS_FILE, usecols=["GalaxyID"]).GalaxyID.tolist()
    with load.serving({"GZ_CACHE": str(cache)}, processes=2) as (url, ports):
        assert len(ports) == 2
        processes = {f"127.0.0.1:{p}" for p in ports.values()}

        # fresh visitors spread over both processes; each one's later requests stay on its own
        visitors = [load.open_page(url) for _ in range(16)]
        assert {upstream for _, upstream in visitors} == processes
        for cookies, upstream in visitors[:4]:
            assert re.fullmatch(r"[0-9a-f]{32}", cookies["gzroute"]) and "_streamlit_xsrf" in cookies
            for _ in range(5):
                with urllib.request.urlopen(urllib.request.Request(f"{url}/_stcore/health",
                                                                   headers=load.cookie_header(cookies))) as answer:
                    assert answer.headers["X-Upstream"] == upstream

        # websocket sessions through the proxy get their pages rendered, each on its visitor's process
        times, errors, landed = {}, [], []
        asyncio.run(load.protocol_visitors(url, ids, 3, time.time() + 1, times, errors, landed))
        assert not errors and set(times) == {"browse", "galaxy", "explain"}
        log, deadline = serve.folder(int(url.rsplit(":", 1)[1])) / "access.log", time.time() + 10
        while log.read_text().count("/_stcore/stream") < 3 and time.time() < deadline:
            time.sleep(0.5)  # nginx logs a websocket when it closes
        routes = {}
        for line in log.read_text().splitlines():
            route, upstream = re.search(r"route=(\w+) upstream=(\S+)", line).groups()
            routes.setdefault(route, set()).add(upstream)
        streams = re.findall(r"GET /_stcore/stream HTTP/1.1\" (\d+) \d+ route=(\w+)", log.read_text())
        assert [status for status, _ in streams] == ["101"] * 3
        assert all(len(routes[route]) == 1 for _, route in streams)  # page, health and websocket: one process

        # an upload (XSRF protection on) reaches its session's process only with the route cookie
        cookies, upstream = visitors[0]
        other = next(c for c, u in visitors if u != upstream)
        boundary = uuid.uuid4().hex
        form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"marks.csv\"\r\n"
                f"Content-Type: text/csv\r\n\r\nGalaxyID,mark\n1,odd\n\r\n--{boundary}--\r\n").encode()
        token = {"Content-Type": f"multipart/form-data; boundary={boundary}", "X-Xsrftoken": cookies["_streamlit_xsrf"]}
        no_token = {"Content-Type": token["Content-Type"]}
        elsewhere = {**cookies, "gzroute": other["gzroute"]}
        statuses = asyncio.run(_uploads(url, cookies, lambda put: [
            _status(url + put, form, {**token, **load.cookie_header(cookies)}, "PUT"),
            _status(url + put, form, {**token, **load.cookie_header(elsewhere)}, "PUT"),
            _status(url + put, form, {**no_token, **load.cookie_header(cookies)}, "PUT")]))
        assert statuses[0] in (200, 204)
        assert statuses[1:] == [400, 403]  # the other process knows no such session; no XSRF token, no upload

        # killed outright, gz serve takes its processes along (PR_SET_PDEATHSIG): nginx's workers too
        nginx = _children(url.pid, "nginx")
        nginx += [worker for master in nginx for worker in _children(master, "nginx")]
        assert nginx
        os.kill(url.pid, signal.SIGKILL)
        deadline = time.time() + 30
        while any(_running(pid) for pid in [*ports, *nginx]) and time.time() < deadline:
            time.sleep(0.5)
        assert not any(_running(pid) for pid in [*ports, *nginx])


def _children(parent: int, name: str) -> list[int]:
    """The ids of `parent`'s child processes called `name`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            comm, rest = stat.read_text().rsplit(") ", 1)
        except OSError:
            continue
        if comm.endswith(f"({name}") and int(rest.split()[1]) == parent:
            found.append(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] not in "ZX"
    except (OSError, IndexError):
        return False
