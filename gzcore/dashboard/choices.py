"""What the user chose: data folder, model, labels CSV, open galaxy, and a predictions table with its
images, kept in session state and in the URL (?data=…&model=…&labels=…&galaxy=…&predictions=…&images=…).
Every choice from the URL or a widget passes `access.admit` (public mode: allowed roots only); a
galaxy is a number. Light on purpose (no torch): app.py imports it, so that a cold start paints Home
before the heavy modules load."""
from __future__ import annotations

import os
import re
from pathlib import Path

import streamlit as st

from gzcore import data, shipped
from gzcore.dashboard import access

UNIVERSE_N, UNIVERSE_SEED = 300, 0   # the default synthetic universe (~10 s to render once)
URL_KEYS = ("data", "model", "labels", "galaxy", "predictions", "images")
REFUSED = "_refused"  # session state: refusals to show on this run's page
MY_RUNS = "_my_runs"  # session state: the checkpoints of this visitor's training runs
MAX_PATH, NAME_MAX = 1024, 255  # characters of a path from the URL or a widget (Linux: 4096), bytes of a name in it
INT64_MAX = 2 ** 63 - 1  # a GalaxyID is a whole number in int64's range, as every id column holds it
_GALAXY = re.compile(r"[0-9]{1,19}")  # ASCII digits only: "²" and "١٢" are digits to Python, not ids


def universe_dir() -> Path:
    return data.default_cache_dir() / f"universe-{UNIVERSE_N}-seed{UNIVERSE_SEED}"


def runs_dir() -> Path:
    return data.default_cache_dir() / "runs"


def galaxy_id(value) -> int | None:
    """A GalaxyID from the URL, a widget or session state: ASCII digits in int64's range, else None."""
    text = str(value).strip()
    return int(text) if _GALAXY.fullmatch(text) and int(text) <= INT64_MAX else None


def parse(key: str, value: str) -> str:
    """The one reading of a choice (one of URL_KEYS) from the URL or a widget: a GalaxyID (`galaxy_id`)
    or a path of at most MAX_PATH characters without control characters, named as a visitor sees it
    (access.located) and inside the allowed roots (access.admit); '' for an empty value (the default).
    Raises access.Refused saying what is wrong, never echoing the value (it may be long, or markdown)."""
    text = str(value).strip()
    if not text:
        return ""  # no choice: the default
    if key == "galaxy":
        if galaxy_id(text) is None:
            raise access.Refused("The GalaxyID chosen is not a number gzcore reads (the digits 0-9, below 2^63).")
        return str(galaxy_id(text))
    text = os.path.expanduser(text)
    try:
        parts = [len(part.encode()) for part in text.split("/")]
    except UnicodeEncodeError:  # a lone surrogate: no file name holds one
        parts = [NAME_MAX + 1]
    if (len(text) > MAX_PATH or max(parts) > NAME_MAX or text.startswith("~")
            or any(ord(c) < 32 or ord(c) == 127 for c in text)):
        raise access.Refused(f"The {key} chosen is not a path gzcore opens (control characters, an unknown "
                             f"user's ~, or more than {MAX_PATH:,} characters, {NAME_MAX} bytes a name).")
    admitted = access.admit(key, access.located(text))
    if key == "model" and access.public() and _another_visitors_run(admitted):
        raise access.Refused("This demo only opens its own checkpoints: the model chosen is not available here.")
    return admitted


def _another_visitors_run(path: str) -> bool:
    """Whether `path` is a checkpoint of this server's training runs that this session did not start
    (in public mode a visitor's runs are theirs alone)."""
    real = os.path.realpath(path)
    return (os.path.dirname(real) == os.path.realpath(runs_dir())
            and real not in {os.path.realpath(p) for p in st.session_state.get(MY_RUNS, [])})


def _admitted(key: str, value: str) -> str | None:
    """`parse(key, value)`, or None with the refusal kept for `refusals`."""
    try:
        return parse(key, value)
    except access.Refused as e:
        st.session_state.setdefault(REFUSED, []).append(str(e))
        return None


def refusals() -> list[str]:
    """The choices refused since the last call (each shown once)."""
    return st.session_state.pop(REFUSED, [])


def sync_url() -> None:
    """Session state <-> query parameters; the URL wins when a session starts. Session state holds the
    server's paths; the URL names them as a visitor may see them (access.named)."""
    for key in URL_KEYS:
        if key not in st.session_state and key in st.query_params:
            st.session_state[key] = _admitted(key, st.query_params[key])
    for key in URL_KEYS:
        value = st.session_state.get(key)
        if value:
            shown = str(value) if key == "galaxy" else access.named(value)
            if st.query_params.get(key) != shown:
                st.query_params[key] = shown
        elif key in st.query_params:
            del st.query_params[key]


def data_dir() -> Path:
    return Path(st.session_state.get("data") or os.environ.get("GZ_DATA") or universe_dir()).expanduser()


def checkpoint_path() -> Path:
    chosen = st.session_state.get("model") or os.environ.get("GZ_CHECKPOINT")
    if chosen:
        return Path(chosen).expanduser()
    return shipped.folder() / ("synthetic.pt" if data_dir() == universe_dir() else "default.pt")


def labels_path() -> Path | None:
    """A CSV of labels for the data folder (first column: the image id), or None: the folder's own
    Kaggle answers for a Galaxy Zoo tree model, none (predictions only) for a model of other targets."""
    chosen = st.session_state.get("labels") or os.environ.get("GZ_LABELS")
    return Path(chosen).expanduser() if chosen else None


def predictions_path() -> Path | None:
    """A predictions table Browse shows instead of the data folder's catalogue (`gz predict --out
    X.parquet`, any size), or None."""
    chosen = st.session_state.get("predictions") or os.environ.get("GZ_PREDICTIONS")
    return Path(chosen).expanduser() if chosen else None


def images_dir() -> Path | None:
    """The folder of the predictions table's images (thumbnails found by id), or None: no images."""
    chosen = st.session_state.get("images") or os.environ.get("GZ_IMAGES")
    return Path(chosen).expanduser() if chosen else None


def choose(key: str, value) -> None:
    """Set a choice (one of URL_KEYS); None or '' returns to the default; a refused one (see
    `_admitted`) leaves it as it was."""
    if value in (None, ""):
        st.session_state[key] = None
    elif (admitted := _admitted(key, str(value))) is not None:
        st.session_state[key] = admitted
