"""`gz serve`: the dashboard as several Streamlit processes behind nginx, one port for visitors.

    gz serve --processes 4 [--port 8501] [--data DIR] [--checkpoint CKPT] [--public] [--base-url-path /gz]

A Streamlit process runs its pages on one core (Python's interpreter lock), so a busy demo needs
several. Each visitor is kept on one process (sticky sessions): a Streamlit session lives in the
process whose websocket it opened, and its uploads (`/_stcore/upload_file/<session>/…`), media
(`/media/…`) and training runs (the Train page's Stop) are known to that process alone. Visitors may share one address (NAT, a load test on
loopback), so the route is a cookie, not the client's address: the first response sets `gzroute`
to a fresh id and nginx picks the process by a consistent hash of it, so every later request of
that browser, the websocket included, reaches the same process.

Everything nginx writes (its config, pid, logs, temporary files) is in one folder of the cache
(`folder`), so neither root nor the system's nginx set-up is needed. Every process shares the cache
folder (GZ_CACHE): what one process computes, the others read.
"""
from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from . import data, upload

APP = Path(__file__).resolve().parent.parent / "app.py"  # the checkout's dashboard (and its .streamlit/)
ROUTE_COOKIE = "gzroute"
INSTALL_HINT = "nginx not found: install it (Debian/Ubuntu: apt-get install nginx-light, or nginx)"
START_TIMEOUT = 180  # seconds for a Streamlit process to answer its health check
_BASE = re.compile(r"^[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*$")


class ServeError(RuntimeError):
    """gz serve cannot start or a process it runs ended."""


def nginx_binary() -> str:
    """nginx's path (on PATH or in /usr/sbin, where Debian puts it), else ServeError saying how to
    install it."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise ServeError(INSTALL_HINT)
    return found


def base_path(value: str) -> str:
    """'/gz/', 'gz' or '/gz' -> 'gz' (Streamlit's server.baseUrlPath); '' or '/' -> ''."""
    base = value.strip("/")
    if base and (not _BASE.match(base) or {".", ".."} & set(base.split("/"))):
        raise ServeError(f"--base-url-path {value!r}: letters, digits and . _ ~ - between slashes only")
    return base


def folder(port: int) -> Path:
    """Where `gz serve --port PORT` keeps nginx's config, pid, logs and temporary files: in the cache,
    named by host and port (a cache shared by several machines keeps them apart)."""
    return data.default_cache_dir().resolve() / "serve" / f"{socket.gethostname()}-{port}"


def free_ports(n: int) -> list[int]:
    """`n` distinct loopback ports the system says are free now."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def nginx_config(where: Path, port: int, upstreams: list[int], public: bool = False, base: str = "") -> str:
    """nginx's configuration: listen on `port` (every interface if `public`, else loopback), proxy to
    the Streamlit processes on the loopback `upstreams`, each visitor kept on one by the gzroute
    cookie; websockets carried; everything written under `where`."""
    prefix = f"/{base}/" if base else "/"
    servers = "\n".join(f"        server 127.0.0.1:{p};" for p in upstreams)
    temp = "\n".join(f"    {kind}_temp_path {where / 'temp' / kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    # a local tool shows which process answered; a public demo does not show its insides
    upstream_header = "" if public else "            add_header X-Upstream $upstream_addr;\n"
    redirect = f"        location = /{base} {{ return 301 {prefix}; }}\n" if base else ""
    return f"""# Written by `gz serve` (gzcore/serve.py): {len(upstreams)} Streamlit process(es) of the dashboard
# behind one port, each visitor kept on one process by the {ROUTE_COOKIE} cookie.
worker_processes 1;
pid {where / 'nginx.pid'};
error_log {where / 'error.log'} warn;
events {{ worker_connections 4096; }}

http {{
    log_format gz '$remote_addr [$time_local] "$request" $status $body_bytes_sent '
                  'route=$gzroute upstream=$upstream_addr $request_time';
    access_log {where / 'access.log'} gz;
{temp}
    # Streamlit enforces the upload caps (gzcore.upload); nginx only must not cut in first
    client_max_body_size {upload.LOCAL.bytes // upload.MB + 1}m;

    map $http_upgrade $connection_upgrade {{ default upgrade; "" close; }}
    # the route: the visitor's cookie when it is one of ours, else this request's fresh id
    map $cookie_{ROUTE_COOKIE} $gzroute {{ "~^[0-9a-f]{{32}}$" $cookie_{ROUTE_COOKIE}; default $request_id; }}

    upstream dashboard {{
        hash $gzroute consistent;
{servers}
    }}

    server {{
        listen {'' if public else '127.0.0.1:'}{port};
{redirect}        location {prefix} {{
            proxy_pass http://dashboard;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $http_host;  # with its port: Streamlit checks the websocket's Origin against it
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 1d;  # a websocket stays open as long as its browser tab
            proxy_send_timeout 1d;
            add_header Set-Cookie "{ROUTE_COOKIE}=$gzroute; Path={prefix}; HttpOnly; SameSite=Lax";
{upstream_header}        }}
    }}
}}
"""


def write_config(where: Path, port: int, upstreams: list[int], public: bool = False, base: str = "") -> Path:
    """`nginx_config` written to `where`/nginx.conf (its temporary folders made); its path."""
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (where / "temp" / kind).mkdir(parents=True, exist_ok=True)
    conf = where / "nginx.conf"
    conf.write_text(nginx_config(where, port, upstreams, public, base))
    return conf


def nginx_command(conf: Path, *extra: str) -> list[str]:
    """nginx on `conf`, its own error log from the start (not the system's /var/log/nginx)."""
    return [nginx_binary(), "-p", str(conf.parent), "-c", str(conf), "-e", str(conf.parent / "error.log"), *extra]


def check_config(conf: Path) -> None:
    """`nginx -t` on `conf`; ServeError with nginx's words when it is not valid."""
    done = subprocess.run(nginx_command(conf, "-t"), capture_output=True, text=True)
    if done.returncode:
        raise ServeError(f"nginx refused {conf}:\n{done.stderr.strip()}")


PRELOADED = ("import sys, gzcore.dashboard.state; from streamlit.web.cli import main; "
             "sys.exit(main(prog_name='streamlit'))")  # `streamlit` with the pages' modules imported first


def streamlit_command(port: int, base: str = "") -> list[str]:
    """One Streamlit process of the dashboard on loopback `port` (the checkout's .streamlit/config.toml
    applies: XSRF protection and CORS stay on, as Streamlit's defaults). It imports the pages'
    modules (torch among them, ~5 s) before it listens, so that its first visitor does not wait for
    them."""
    return [sys.executable, "-c", PRELOADED, "run", str(APP), "--server.port", str(port),
            "--server.address", "127.0.0.1", "--server.headless", "true", "--server.fileWatcherType", "none",
            "--server.baseUrlPath", base, "--browser.gatherUsageStats", "false"]


def environment(data_dir: Path | None, checkpoint: Path | None, public: bool) -> dict[str, str]:
    """The dashboard's settings for every process: GZ_DATA, GZ_CHECKPOINT, GZ_PUBLIC and one GZ_CACHE."""
    env = {**os.environ, "GZ_CACHE": str(data.default_cache_dir().resolve())}
    if data_dir:
        env["GZ_DATA"] = str(data_dir.resolve())
    if checkpoint:
        env["GZ_CHECKPOINT"] = str(checkpoint.resolve())
    if public:
        env["GZ_PUBLIC"] = "1"
    return env


def _healthy(port: int, base: str) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/{base + '/' if base else ''}_stcore/health", timeout=2)
        return True
    except OSError:
        return False


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _nginx_ends_with(parent: int) -> None:
    """nginx's start: SIGTERM for it when `parent` ends, even by SIGKILL (PR_SET_PDEATHSIG, Linux).
    Not data.die_with_parent's SIGKILL: a killed nginx master leaves its workers serving; a
    terminated one ends them."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the line above
        os._exit(1)


def _stop(signum, frame):
    raise KeyboardInterrupt  # SIGTERM ends gz serve as Ctrl-C does


def run(processes: int, port: int = 8501, data_dir: Path | None = None, checkpoint: Path | None = None,
        public: bool = False, base_url_path: str = "") -> None:
    """Start `processes` Streamlit processes and nginx in front of them on `port`; return when
    interrupted (Ctrl-C, SIGTERM: every child ended first), or ServeError when one ends by itself.
    Every child is ended with this process, even a SIGKILL of it (PR_SET_PDEATHSIG)."""
    if processes < 1:
        raise ServeError("--processes must be at least 1")
    if not APP.is_file():
        raise ServeError(f"the dashboard ({APP}) is not beside the package: run gz serve from a checkout")
    base = base_path(base_url_path)
    with socket.socket() as probe:  # before minutes of starting Streamlit processes
        try:
            probe.bind(("" if public else "127.0.0.1", port))
        except OSError as e:
            raise ServeError(f"port {port}: {e.strerror}; choose another --port") from e
    where = folder(port)
    ports = free_ports(processes)
    conf = write_config(where, port, ports, public, base)
    check_config(conf)
    env, parent = environment(data_dir, checkpoint, public), os.getpid()
    signal.signal(signal.SIGTERM, _stop)
    children: dict[str, subprocess.Popen] = {}  # name -> process
    logs: dict[str, Path] = {}

    def start(name: str, command: list[str], log: Path, ends_with) -> None:
        logs[name] = log
        with open(log, "w") as out:  # each child keeps its own copy of the descriptor
            # a session of its own: Ctrl-C reaches gz serve only, which ends the children in order
            children[name] = subprocess.Popen(command, cwd=APP.parent, env=env, stdout=out, stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL, start_new_session=True,
                                              preexec_fn=lambda: ends_with(parent))

    def ended() -> str | None:
        for name, proc in children.items():
            if proc.poll() is not None:
                return f"{name} ended (exit status {proc.returncode}); the end of {logs[name]}:\n{_tail(logs[name])}"
        return None

    try:
        for p in ports:
            start(f"streamlit :{p}", streamlit_command(p, base), where / f"streamlit-{p}.log", data.die_with_parent)
        deadline = time.time() + START_TIMEOUT
        while not all(_healthy(p, base) for p in ports):
            if (why := ended()) or time.time() > deadline:
                raise ServeError(why or f"the Streamlit processes did not answer within {START_TIMEOUT} s "
                                        f"(logs: {where}/streamlit-*.log)")
            time.sleep(0.5)
        start("nginx", nginx_command(conf, "-g", "daemon off;"), where / "nginx.out", _nginx_ends_with)
        time.sleep(0.5)
        if why := ended():
            raise ServeError(why + "\n" + _tail(where / "error.log"))
        host = socket.gethostname() if public else "127.0.0.1"
        print(f"gz serve: the dashboard at http://{host}:{port}/{base + '/' if base else ''} — {processes} "
              f"Streamlit process(es) on 127.0.0.1:{','.join(map(str, ports))} behind nginx, each visitor kept on "
              f"one ({ROUTE_COOKIE} cookie){'; public demo (GZ_PUBLIC=1)' if public else ''}. Config and logs: "
              f"{where}. Ctrl-C stops all.", flush=True)
        while not (why := ended()):
            time.sleep(1)
        raise ServeError(why)
    except KeyboardInterrupt:
        print("gz serve: stopping", flush=True)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        for proc in children.values():
            if proc.poll() is None:
                proc.terminate()  # nginx: fast shutdown; Streamlit: ends its sessions and runs
        for proc in children.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def command(args) -> None:
    """`gz serve`: `run` with the options; its errors as one line of the command line's."""
    try:
        run(args.processes, args.port, args.data, args.checkpoint, args.public, args.base_url_path)
    except ServeError as e:
        sys.exit(f"gz serve: error: {e}")
