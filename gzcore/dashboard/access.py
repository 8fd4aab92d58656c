"""What a visitor may reach. By default the dashboard is a local tool: any folder or checkpoint the
user names is opened. `GZ_PUBLIC=1 streamlit run app.py` serves a demo safe to expose:

- folders and files named in the URL or a widget are opened only inside the allowed roots (the
  defaults, GZ_DATA, GZ_CHECKPOINT, GZ_LABELS, GZ_PREDICTIONS, GZ_IMAGES and the roots listed in
  GZ_ALLOW, separated by ':'), after resolving `..` and symbolic links; anything else is refused
  with one message that does not say whether it exists;
- messages show file names, never the server's folders, and no traceback reaches the page; a
  folder or file shown in a widget or the URL is named by its place under an allowed root
  (`named`: 'universe', 'runs/NAME.pt'), which is read back the same way (`located`);
- training from the browser is capped (`TRAINING`), only its starter may stop a run, and a
  visitor's runs are not listed to other visitors.

Torch-free: app.py imports it.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from gzcore import data, shipped

PATH_KEYS = ("data", "model", "labels", "predictions", "images")
ENV = {"data": "GZ_DATA", "model": "GZ_CHECKPOINT", "labels": "GZ_LABELS", "predictions": "GZ_PREDICTIONS",
       "images": "GZ_IMAGES"}
TRAINING = {"minutes": 1.0, "epochs": 3, "subset": 512}  # a public run's caps (one thread, one run at a time)
_PATH = re.compile(r"(?<![\w.~])(?:/[^\s/:'\"`,;()]+)+/?")  # an absolute path (not the / of "3/4")


class Refused(ValueError):
    """A visitor named a place outside the allowed roots."""


def public() -> bool:
    return os.environ.get("GZ_PUBLIC", "").strip().lower() in ("1", "true", "yes", "on")


def allowed_roots() -> list[Path]:
    """Where a public demo may read: the shipped checkpoints, the default universe, this server's
    training runs, the configured paths (GZ_DATA …) and GZ_ALLOW's roots; resolved."""
    cache = data.default_cache_dir()
    roots = [shipped.folder(), cache / "runs", *cache.glob("universe-*")]
    roots += [Path(os.environ[v]) for v in ENV.values() if os.environ.get(v)]
    roots += [Path(p) for p in os.environ.get("GZ_ALLOW", "").split(os.pathsep) if p.strip()]
    return [Path(os.path.realpath(r.expanduser())) for r in roots]


def admit(key: str, value: str) -> str:
    """`value` for the choice `key` (one of PATH_KEYS), or Refused in public mode when it leaves the
    allowed roots (`..` and symbolic links resolved first)."""
    if not public() or key not in PATH_KEYS:
        return value
    target = Path(os.path.realpath(Path(value).expanduser()))
    if any(target == root or root in target.parents for root in allowed_roots()):
        return value
    raise Refused(f"This demo only opens its own {'checkpoints' if key == 'model' else 'data'}: "
                  f"the {key} chosen is not available here.")


def _labelled_roots() -> dict[str, Path]:
    """The allowed roots by the name a visitor sees for each: its own name ('universe', 'runs',
    'quick.pt'); a later root of a name already taken gets '-2', '-3'…"""
    labelled: dict[str, Path] = {}
    for root in allowed_roots():
        if root in labelled.values():
            continue
        label, n = root.name or "root", 1
        while label in labelled:
            n += 1
            label = f"{root.name}-{n}"
        labelled[label] = root
    return labelled


def named(path) -> str:
    """A folder or file as a visitor may see it, in a widget, a message or the URL: the path itself
    locally; in public mode its place under the allowed root that holds it, named by that root
    ('universe', 'runs/20261201-120000-dieleman.pt'), else its file name alone. `located` reads it
    back."""
    if not public():
        return str(path)
    target = Path(os.path.realpath(Path(path).expanduser()))
    inside = [(label, root) for label, root in _labelled_roots().items()
              if target == root or root in target.parents]
    if not inside:
        return target.name
    label, root = max(inside, key=lambda found: len(found[1].parts))  # the closest root
    return str(Path(label, target.relative_to(root)))


def located(value: str) -> str:
    """What a visitor names (`named`'s 'ROOT-NAME/rest') as the server's path, in public mode; any
    other value unchanged, for `admit` to judge."""
    if not public() or not Path(value).parts or Path(value).is_absolute():  # "" and "." have no parts
        return value
    first, *rest = Path(value).parts
    root = _labelled_roots().get(first)
    return str(root.joinpath(*rest)) if root is not None else value


def shown(message: str) -> str:
    """An error message as a visitor may see it: in public mode, every path cut to its file name."""
    if not public():
        return message
    return _PATH.sub(lambda m: Path(m.group(0).rstrip("/\\")).name or "…", message)
