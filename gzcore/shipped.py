"""Where the shipped models are: `checkpoints/` beside the package in a checkout (or an editable
install), else the copy a `pip install .` puts under `<prefix>/share/gzcore/checkpoints`
(pyproject.toml's data-files). Torch-free, so the dashboard's first paint can read it."""
from __future__ import annotations

import sysconfig
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent / "checkpoints"
INSTALLED = Path(sysconfig.get_path("data")) / "share" / "gzcore" / "checkpoints"


def folder() -> Path:
    """The folder of the shipped checkpoints (the checkout's when both exist)."""
    return CHECKOUT if (CHECKOUT / "default.pt").is_file() or not INSTALLED.is_dir() else INSTALLED

