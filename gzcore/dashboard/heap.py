"""The server's long-lived objects kept out of the garbage collector's full passes.

Streamlit collects every generation after each script run (runner.postScriptGC: gc.collect(2)).
With torch, pandas, Plotly and the loaded model in the process that is a walk over ~400,000 objects,
~0.2 CPU-s after every page view: more than a light page itself. gc.freeze() moves the objects alive
now to a permanent generation that collections skip; reference counting still frees them as before.
`settle`, called at the start of every run (app.py), freezes when modules were imported since the
last time (a page's heavy imports, each once per server), after a collection, so that what those
runs loaded (modules, models, catalogues) is walked no more. The price: a frozen object freed only by
a collection (one in a reference cycle) stays until the process ends; freezes are few per server.
Only in a server that `streamlit run` started: AppTest runs pages inside a test runner's process,
whose heap is the tests' own.

The C heap too: glibc's malloc raises its mmap threshold each time a large block is freed (up to 32
MB), so the large temporary buffers of torch and numpy (a batch through the model, a decoded image)
soon come from the heap, whose freed pages glibc seldom returns; a server's memory crept up with
every inference (benchmarks/soak.py, docs/RELIABILITY.md). `settle` fixes the threshold at glibc's
starting 128 KiB once (large buffers are mapped and unmapped, given back when freed) and gives free
heap pages back (malloc_trim) at most once every TRIM_EVERY seconds.
"""
from __future__ import annotations

import ctypes
import gc
import sys
import threading
import time

_lock = threading.Lock()
_modules = 0  # len(sys.modules) at the last freeze
M_MMAP_THRESHOLD, MMAP_FROM = -3, 128 * 1024  # mallopt's parameter and glibc's starting value
TRIM_EVERY = 60.0
_libc, _trimmed = None, 0.0


def _glibc():
    """The C library, once, when it is glibc (mallopt and malloc_trim exist); else None."""
    global _libc
    if _libc is None:
        try:
            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt(M_MMAP_THRESHOLD, MMAP_FROM)
            _libc = libc
        except (OSError, AttributeError):  # not glibc
            _libc = False
    return _libc or None


def _trim() -> None:
    global _trimmed
    libc = _glibc()
    if libc is not None and time.monotonic() - _trimmed > TRIM_EVERY:
        _trimmed = time.monotonic()
        libc.malloc_trim(0)


def settle(served: bool | None = None) -> bool:
    """Collect and freeze the heap when modules were imported since the last freeze, in a server
    (`served`; default: whether `streamlit run` started this process); whether it froze."""
    global _modules
    if not (served if served is not None else "streamlit.web.bootstrap" in sys.modules):
        return False
    _trim()
    if len(sys.modules) == _modules:
        return False
    with _lock:
        if len(sys.modules) == _modules:
            return False
        _modules = len(sys.modules)
        gc.collect()
        gc.freeze()
        return True
