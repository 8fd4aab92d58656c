"""Atomic writes of result files (checkpoints, prediction tables, Parquet parts): a crash or a failed
write mid-way leaves the previous file as it was, never a partial one that is later read as good."""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import stat
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


def refuse_special(path) -> None:
    """An OSError naming `path` when it exists and is not a regular file (a device such as /dev/null,
    a named pipe, a socket, a folder, or a link to one of them): the rename of `write` would put a
    regular file in its place (as root, in place of a system's device)."""
    try:
        mode = os.stat(path).st_mode  # follows links: a link to a regular file is written as one
    except FileNotFoundError:
        return
    except OSError:  # a dangling link, a loop, no permission: the write itself says what is wrong
        return
    if not stat.S_ISREG(mode):
        kind = ("a folder" if stat.S_ISDIR(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "a special file")
        link = "a link to " if Path(path).is_symlink() else ""
        raise OSError(errno.EEXIST, f"is {link}{kind}, not a regular file; give a file path", str(path))


class Busy(OSError):
    """Another process holds the lock of `held`: its message names the path and the holder's pid."""


def lock_path(path) -> Path:
    """The lock file `held` takes for `path`: `NAME.lock` beside it."""
    path = Path(path)
    return path.with_name(f"{path.name}.lock")


_HELD: dict[str, int] = {}  # lock files this process holds -> how many `held` blocks hold each


@contextlib.contextmanager
def held(path, what: str = "a run"):
    """Hold an exclusive lock on writing `path` for the block: a second process asking for it
    gets `Busy` at once, naming `path` and the holder's pid, instead of both writing it and one
    losing its work. The lock is `NAME.lock` beside `path` (holding this process's pid), removed at
    the end; the system releases it if the process dies. Within the process that holds it, `held`
    is held again at once (the command line holds it around its checks and `train.fit`)."""
    path = Path(path)
    where = lock_path(path)
    key = os.path.abspath(where)
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    where.parent.mkdir(parents=True, exist_ok=True)
    while True:
        f = open(where, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            text = f.read().strip()
            f.close()
            pid = f" (pid {text})" if text.isdigit() else ""
            raise Busy(errno.EBUSY, f"{what} in another process{pid} is writing it; wait for that to "
                       f"end, or write elsewhere", str(path)) from None
        try:  # the file locked is still the one at `where` (not one a finishing holder removed)
            same = os.path.samestat(os.fstat(f.fileno()), os.stat(where))
        except FileNotFoundError:
            same = False
        if same:
            break
        f.close()
    try:
        f.truncate(0)
        f.write(str(os.getpid()))
        f.flush()
        _HELD[key] = 1
        yield
    finally:
        _HELD.pop(key, None)
        Path(where).unlink(missing_ok=True)  # while still holding it, then release
        f.close()


@contextlib.contextmanager
def write(path, make_folder: bool = True):
    """A binary file to write `path` through: a temporary file beside it (`temporary`), flushed
    and synced to disk, then renamed over `path` when the block ends without error (and the folder
    synced, so that the rename survives a power cut). On error it is removed and `path` unchanged;
    a killed process's leftover for `path` is removed first. A `path` that is not a regular file (a
    device, a named pipe, a folder) is refused (`refuse_special`), and an OSError of the writing
    that names no file names `path`. Without `make_folder`, a missing folder
    is a FileNotFoundError (the crop cache's parts: their folder gone means another process is done)."""
    path = Path(path)
    refuse_special(path)
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
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.filename is None:  # e.g. "[Errno 27] File too large", "[Errno 28] No space left": name the file
            raise OSError(e.errno, f"cannot write it ({e.strerror or e})", str(path)) from e
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
