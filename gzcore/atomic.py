"""Atomic writes of result files (checkpoints, prediction tables, Parquet parts): a crash or a failed
write mid-way leaves the previous file as it was, never a partial one that is later read as good."""
from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path


def temporary(path: Path) -> Path:
    """The temporary file `write` uses for `path`: named after this host and process, so that a
    dead process's leftovers can be told apart (`remove_stale`)."""
    return path.with_name(f"{path.name}.tmp.{socket.gethostname()}.{os.getpid()}")


def remove_stale(folder: Path, prefix: str) -> None:
    """Remove the temporary files (`temporary`) of names starting with `prefix` left in `folder` by
    processes of this host that no longer run (killed with SIGKILL, or the machine went down)."""
    host = socket.gethostname()
    for tmp in Path(folder).glob(f"{prefix}*.tmp.*"):
        owner, _, pid = tmp.name.split(".tmp.", 1)[1].rpartition(".")
        if owner == host and pid.isdigit() and not _running(int(pid)):
            tmp.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        pass
    return True


@contextlib.contextmanager
def write(path, make_folder: bool = True):
    """A binary file to write `path` through: a temporary file beside it (`temporary`), flushed
    and synced to disk, then renamed over `path` when the block ends without error (and the folder
    synced, so that the rename survives a power cut). On error it is removed and `path` unchanged;
    a killed process's leftover for `path` is removed first. Without `make_folder`, a missing folder
    is a FileNotFoundError (the crop cache's parts: their folder gone means another process is done)."""
    path = Path(path)
    if make_folder:
        path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path.parent, path.name)
    tmp = temporary(path)
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
