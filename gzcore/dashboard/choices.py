"""What the user chose: data folder, model, labels CSV, open galaxy, and a predictions table with its
images, kept in session state and in the URL (?data=…&model=…&labels=…&galaxy=…&predictions=…&images=…).
Every choice from the URL or a widget passes `access.admit` (public mode: allowed roots only); a
galaxy is a number. Light on purpose (no torch): app.py imports it, so that a cold start paints Home
before the heavy modules load."""
from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from gzcore import data, shipped
from gzcore.dashboard import access

UNIVERSE_N, UNIVERSE_SEED = 300, 0   # the default synthetic universe (~10 s to render once)
URL_KEYS = ("data", "model", "labels", "galaxy", "predictions", "images")
REFUSED = "_refused"  # session state: refusals to show on this run's page


def universe_dir() -> Path:
    return data.default_cache_dir() / f"universe-{UNIVERSE_N}-seed{UNIVERSE_SEED}"


def runs_dir() -> Path:
    return data.default_cache_dir() / "runs"


def _admitted(key: str, value: str) -> str | None:
    """`value` if the choice `key` may take it, else None with the refusal kept for `refusals`."""
    if key == "galaxy":
        return value if value.strip().isdigit() and len(value.strip()) <= 25 else None
    try:
        return access.admit(key, value)
    except access.Refused as e:
        st.session_state.setdefault(REFUSED, []).append(str(e))
        return None


def refusals() -> list[str]:
    """The choices refused since the last call (each shown once)."""
    return st.session_state.pop(REFUSED, [])


def sync_url() -> None:
    """Session state <-> query parameters; the URL wins when a session starts."""
    for key in URL_KEYS:
        if key not in st.session_state and key in st.query_params:
            st.session_state[key] = _admitted(key, st.query_params[key])
    for key in URL_KEYS:
        value = st.session_state.get(key)
        if value:
            st.query_params[key] = str(value)
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
