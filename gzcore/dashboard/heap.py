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
"""
from __future__ import annotations

import gc
import sys
import threading

_lock = threading.Lock()
_modules = 0  # len(sys.modules) at the last freeze


def settle(served: bool | None = None) -> bool:
    """Collect and freeze the heap when modules were imported since the last freeze, in a server
    (`served`; default: whether `streamlit run` started this process); whether it froze."""
    global _modules
    if len(sys.modules) == _modules or not (served if served is not None else "streamlit.web.bootstrap" in sys.modules):
        return False
    with _lock:
        if len(sys.modules) == _modules:
            return False
        _modules = len(sys.modules)
        gc.collect()
        gc.freeze()
        return True
