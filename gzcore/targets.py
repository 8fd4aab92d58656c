"""What a model predicts (its task): the Galaxy Zoo tree's 37 answers, scalar targets such as
gas-phase metallicity, or classes. Unknown labels are NaN everywhere: they add no loss and no score.

A `Task` travels in the checkpoint. It says which head the model has, how labels are encoded for
training (scalar targets are standardised with the training rows' mean and spread, classes become
indices) and how raw outputs are decoded into the user's units (decoded classes are probabilities).
`read` turns any CSV whose first column is the image id into labels for chosen target columns.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from . import data, tree
from .data import DataError

KINDS = ("tree", "regression", "classification")


@dataclass(frozen=True)
class Task:
    kind: str                       # one of KINDS
    columns: tuple[str, ...]        # what the model outputs: tree.COLUMNS, the targets, or the classes
    target: str | None = None       # classification: the CSV column holding the class names
    mean: tuple[float, ...] = ()    # regression: the training rows' mean of each target...
    std: tuple[float, ...] = ()     # ...and spread (the model predicts standardised values)
    units: tuple[str, ...] = ()     # regression: each target's units ("dex"; "" or absent: none)

    @property
    def head(self) -> str:
        """models.build's head: the tree head, or a linear one (scalars, or class logits)."""
        return "tree" if self.kind == "tree" else "regression"

    @property
    def label_columns(self) -> tuple[str, ...]:
        """The columns of the labels array (N, K) a GalaxySet holds for this task."""
        return (self.target,) if self.kind == "classification" else self.columns

    @property
    def unit_name(self) -> str:
        """How scores are read: "RMSE" over answers or targets, "RMSE of class probabilities"."""
        return "RMSE of class probabilities" if self.kind == "classification" else "RMSE"

    def unit(self, column: str) -> str:
        """The units of a target column ("" when it has none, or for the tree and classes)."""
        i = self.columns.index(column) if column in self.columns else len(self.units)
        return self.units[i] if i < len(self.units) else ""

    @property
    def shared_unit(self) -> str:
        """The units every target shares (an RMSE over all of them is in these), else ""."""
        units = {self.unit(c) for c in self.columns}
        return units.pop() if self.kind == "regression" and len(units) == 1 else ""

    def named(self, column: str) -> str:
        """A column as axis titles and table rows name it, with its units: "oh (dex)"."""
        return f"{column} ({self.unit(column)})" if self.unit(column) else column

    @property
    def loss_scale(self) -> float | None:
        """What turns the root of the training loss into the labels' units: 1 for the tree's
        fractions, one regression target's spread (the loss compares standardised values); None
        where no one factor does (several targets, each with its own spread; a classifier's
        cross-entropy), or before `fitted`."""
        if self.kind == "tree":
            return 1.0
        return self.std[0] if self.kind == "regression" and len(self.std) == 1 else None

    def format(self, column: str, value: float, spread: float | None = None) -> str:
        """A value of `column` as every page and command shows it: "8.94 ± 0.02 dex" (`value_text`
        with the column's units)."""
        return value_text(value, spread, self.unit(column))

    def fitted(self, labels: np.ndarray) -> "Task":
        """The task with its normalisation taken from training labels (regression only)."""
        if self.kind != "regression":
            return self
        mean = np.nanmean(labels, axis=0)
        std = np.nanstd(labels, axis=0)
        return replace(self, mean=tuple(float(m) for m in mean),
                       std=tuple(float(s) if s > 0 else 1.0 for s in std))

    def encode(self, labels: np.ndarray) -> np.ndarray:
        """Labels in the units the loss compares with raw outputs (NaN stays NaN)."""
        if self.kind == "regression":
            return ((labels - np.array(self.mean)) / np.array(self.std)).astype(np.float32)
        return np.asarray(labels, np.float32)

    def decode(self, raw: np.ndarray) -> np.ndarray:
        """Raw model outputs -> answers (tree), targets in their units, or class probabilities."""
        raw = np.asarray(raw, np.float64)
        if self.kind == "regression":
            return (raw * np.array(self.std) + np.array(self.mean)).astype(np.float32)
        if self.kind == "classification":
            e = np.exp(raw - raw.max(axis=1, keepdims=True))
            return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
        return raw.astype(np.float32)

    def decode_spread(self, spread: np.ndarray) -> np.ndarray:
        """A spread of raw outputs (`evaluate.predict(spread=True)`) in `decode`'s units."""
        if self.kind == "classification":
            raise ValueError("a classifier's uncertainty is its class probabilities; no spread")
        return (np.asarray(spread) * np.array(self.std)).astype(np.float32) if self.kind == "regression" \
            else np.asarray(spread, np.float32)

    def comparable(self, labels: np.ndarray) -> np.ndarray:
        """Labels in the space of `decode`'s output: one-hot rows for classes (NaN rows unknown)."""
        if self.kind != "classification":
            return labels
        known = ~np.isnan(labels[:, 0])
        out = np.full((len(labels), len(self.columns)), np.nan, np.float32)
        out[known] = np.eye(len(self.columns), dtype=np.float32)[labels[known, 0].astype(int)]
        return out

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict | None) -> "Task":
        """The inverse of `to_dict`; checkpoints written before tasks existed predict the tree."""
        if not d:
            return TREE
        d = dict(d)
        for key in ("columns", "mean", "std", "units"):
            d[key] = tuple(d.get(key) or ())
        return cls(**d)


TREE = Task("tree", tree.COLUMNS)


def value_text(value: float, spread: float | None = None, unit: str = "") -> str:
    """"8.94 ± 0.02 dex": the value to the spread's precision (one significant digit of the spread,
    two when it starts with 1), or to 3 significant digits without a spread; then the units."""
    if value is None or not np.isfinite(value):
        return "–"
    if spread is None or not np.isfinite(spread) or spread <= 0:
        text = f"{value:.3g}"
    else:
        digits = -math.floor(math.log10(spread))
        digits += f"{spread:.0e}".startswith("1")  # 0.15 keeps two digits: ± 0.15, not ± 0.1
        digits = min(digits, 12)
        if digits > 0:
            text = f"{value:.{digits}f} ± {spread:.{digits}f}"
        else:  # a spread of tens or more: both rounded to its leading digit's place
            text = f"{round(value, digits):.0f} ± {round(spread, digits):.0f}"
    return f"{text} {unit}" if unit else text


def header_units(column: str) -> str:
    """The units a CSV header gives its column: "oh_p50 [dex]" -> "dex", "mass (log Msun)" ->
    "log Msun"; "" when it names none."""
    match = re.fullmatch(r".*?\s*[\[(]\s*([^\[\]()]+?)\s*[\])]\s*", column)
    return match.group(1) if match else ""


def of_checkpoint(ckpt: dict) -> Task:
    return Task.from_dict(ckpt.get("task"))


def read(csv_path, targets=(), task: Task | None = None, units=(), classes: bool = False
         ) -> tuple[np.ndarray, np.ndarray, Task]:
    """(ids int64, labels float32 (N, K) with NaN for unknown, the task) from a CSV whose first
    column is the image id and which holds the `targets` columns. One non-numeric target column is
    a classification task (its distinct values, sorted, are the classes), as is one column of
    numbers with `classes` (its values are class names: 0, 1, 2); numeric ones are regression
    targets, in `units` (one per target; by default those their headers give, `header_units`).
    With a trained model's `task`, its columns and classes are read instead (evaluation). Errors
    name the file and the line."""
    import pandas as pd

    csv_path = Path(csv_path)
    targets = list(task.label_columns if task else targets)
    df = data.read_table(csv_path, targets)
    if not targets:
        raise DataError(f"{csv_path}: name at least one target column (--target)")
    missing = [t for t in targets if t not in df.columns[1:]]
    if missing:
        raise DataError(f"{csv_path}: no column {', '.join(map(repr, missing))}; its columns are "
                        f"{', '.join(df.columns[1:][:20])}")
    ids = _ids(df.iloc[:, 0], csv_path)
    cells = df[targets].apply(lambda c: c.str.strip())
    unknown = cells.isin(data.UNKNOWN).to_numpy()
    values = cells.apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    text = np.isnan(values) & ~unknown
    if task is not None and task.kind == "classification":
        return ids, _class_indices(cells.iloc[:, 0], unknown[:, 0], task.columns, csv_path), task
    if classes and len(targets) > 1:
        raise DataError(f"{csv_path}: classes come from one column; {len(targets)} were named")
    if text.any(axis=0).any() or classes:
        if len(targets) > 1:
            j = int(np.flatnonzero(text.any(axis=0))[0])
            raise DataError(f"{csv_path}: column {targets[j]!r} holds text (class names), which is "
                            f"a classification target: train it alone")
        classes = tuple(sorted(set(cells.iloc[:, 0][~unknown[:, 0]]), key=_class_order))
        labels = _class_indices(cells.iloc[:, 0], unknown[:, 0], classes, csv_path)
        return ids, labels, Task("classification", classes, target=targets[0])
    if not np.isfinite(values[~unknown]).all():
        i, j = np.argwhere(~np.isfinite(values) & ~unknown)[0]
        raise DataError(f"{csv_path}, line {i + 2}: {targets[j]} is not a finite number")
    units = tuple(units) or tuple(header_units(t) for t in targets)
    if len(units) != len(targets):
        raise DataError(f"{csv_path}: {len(units)} units for {len(targets)} targets; give one per target")
    return ids, values.astype(np.float32), Task("regression", tuple(targets),
                                                 units=units if any(units) else ())


def _class_order(name: str) -> tuple:
    """Classes sorted by name, those that are numbers by value (2 before 10)."""
    try:
        return (0, float(name), name)
    except ValueError:
        return (1, 0.0, name)


@dataclass(frozen=True)
class Column:
    """A column of a labels CSV that a model could learn (`columns`)."""
    name: str
    known: int          # rows with a value
    numbers: bool       # every known value is a number (a regression target, or classes named 0, 1 …)
    distinct: int       # distinct known values
    units: str          # as its header gives them (`header_units`)

    @property
    def kind(self) -> str:
        """The task it trains by default: "regression" for numbers, else "classification"."""
        return "regression" if self.numbers else "classification"


def columns(csv_path) -> tuple[str, list[Column]]:
    """(the id column's name, the other columns of a labels CSV as `Column`s), for a target picker.
    The first column must hold image ids (DataError naming the line otherwise)."""
    import pandas as pd

    csv_path = Path(csv_path)
    df = data.read_table(csv_path)
    if len(df.columns) < 2:
        raise DataError(f"{csv_path}: only one column ({df.columns[0]}); expected the image id and then "
                        f"at least one target column")
    _ids(df.iloc[:, 0], csv_path)
    found = []
    for name in df.columns[1:]:
        cells = df[name].str.strip()
        known = cells[~cells.isin(data.UNKNOWN)]
        numbers = pd.to_numeric(known, errors="coerce")
        found.append(Column(name, len(known), bool(numbers.notna().all()), int(known.nunique()),
                            header_units(name)))
    return df.columns[0], found


def labels_near(folder) -> list[Path]:
    """The CSV files in an image folder and in the folder above it (where `images/` and its
    `labels.csv` usually sit), but Kaggle's answers file (the tree's labels): labels CSVs to offer."""
    folder = Path(folder)
    places = [folder] + ([folder.parent] if folder.parent != folder else [])
    found = [p for place in places if place.is_dir() for p in sorted(place.glob("*.csv"))]
    return [p for p in found if p.name != data.LABELS_FILE]


def _class_indices(names, unknown, classes, csv_path: Path) -> np.ndarray:
    """(N, 1) float32 class indices of `names` (NaN where unknown); an unknown class is an error."""
    index = {c: i for i, c in enumerate(classes)}
    out = np.full((len(names), 1), np.nan, np.float32)
    for row, (name, u) in enumerate(zip(names, unknown)):
        if u:
            continue
        if name not in index:
            raise DataError(f"{csv_path}, line {row + 2}: class {name!r} is not one the model knows "
                            f"({', '.join(classes)})")
        out[row, 0] = index[name]
    return out


def _ids(column, csv_path: Path) -> np.ndarray:
    """The first column as int64 ids (`data.parse_id`: read exactly, as image names are)."""
    ids = [data.parse_id(value) for value in column]
    if None in ids:
        i = ids.index(None)
        raise DataError(f"{csv_path}, line {i + 2}: id {column.iloc[i]!r} is not an integer naming "
                        f"an image (the first column names each image: <id>.jpg, .png or .fits; digits "
                        f"only, below 2^63)")
    ids = np.array(ids, dtype=np.int64)
    values, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise DataError(f"{csv_path}: id {values[counts > 1][0]} appears more than once")
    return ids


def open_labelled(folders, labels=None, targets=(), task: Task | None = None,
                  skip_bad: bool = False, units=(), classes: bool = False) -> tuple[data.GalaxySet, Task]:
    """The labelled galaxies of one or more folders and the task their labels set: the folders' own
    Kaggle answers (the tree; partial ones allowed), or the `targets` columns of the CSV `labels`
    whose first column is the image id (or `task`'s columns, for a trained model); `units` and
    `classes` as `read` takes them."""
    folders = [folders] if isinstance(folders, (str, Path)) else list(folders)
    if labels is None:
        return data.GalaxySet.concat([data.open_folder(f, labels=True, skip_bad=skip_bad)
                                      for f in folders]), TREE
    if task is not None and task.kind == "tree":  # Kaggle answers from a CSV outside the folder
        ids, values = data.read_labels(labels)
    else:
        ids, values, task = read(labels, targets, task, units, classes)
    images = data.GalaxySet.concat([data.images_of(f) for f in folders])
    return data.with_labels(images, ids, values, skip_bad=skip_bad), task


def open_for(folder, task: Task, labels=None) -> data.GalaxySet:
    """The galaxies a model of `task` is shown with (the dashboard's and `gz catalog`'s): the rows of
    the CSV `labels` (the task's columns, or Kaggle answers for a tree model), else the folder's
    own Kaggle answers for a tree model, else none (predictions only). Rows whose image is missing
    are skipped and listed."""
    if labels is not None:
        return open_labelled(folder, labels, task=task, skip_bad=True)[0]
    return data.open_folder(folder, labels=None if task.kind == "tree" else False, skip_bad=True)

