"""A catalogue too big for memory: a predictions table of any size (`gz predict --out X.parquet`, a
Parquet file or a CSV of Galaxy Zoo answers) browsed without loading it whole.

`build` turns the predictions into the enriched catalogue once (the columns of `catalog.enrich`),
a slice of `CHUNK` rows at a time, and writes it as an Arrow IPC file in the cache folder (written
atomically, keyed by the source's files). `Catalogue` memory-maps that file and hands out one
column at a time, so that a Browse filter or sort reads the few columns it names (4 MB each for a
million galaxies) and nothing else. It offers the part of pandas' DataFrame interface the
`catalog` functions read (`table[column]`, `column in table`, `len`, `.columns`, `.iloc[rows]`),
so the same filters, sorts, summaries and labels serve both catalogues.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv
import pyarrow.dataset
import pyarrow.ipc

from . import atomic, catalog, computed, data, evaluate, tree

VERSION = 1       # of the enriched file
CHUNK = 65_536    # rows enriched at a time: ~80 MB of derived columns
KEEP_COLUMNS = 48  # columns held in memory at once (4 MB each per million rows)
ID_COLUMNS = ("GalaxyID", "id")


def _source_files(source: Path) -> list[Path]:
    if source.is_dir():
        files = sorted(source.glob("*.parquet"))
        if not files:
            raise data.DataError(f"{source}: no Parquet parts (part-*.parquet) in this folder")
        return files
    if not source.is_file():
        raise data.DataError(f"{source}: no such predictions file or folder")
    if source.suffix.lower() not in (".parquet", ".csv"):
        raise data.DataError(f"{source}: predictions must be a .parquet file or folder, or a .csv")
    return [source]


def _dataset(source: Path) -> pa.dataset.Dataset:
    files = _source_files(source)
    return pa.dataset.dataset([str(f) for f in files], format="csv" if files[0].suffix.lower() == ".csv" else "parquet")


def _columns_of(source: Path, names: list[str]) -> tuple[str, list[str], list[str], list[str]]:
    """(id column, crowd columns, spread columns) found in a predictions table, or DataError."""
    ids = [c for c in ID_COLUMNS if c in names]
    missing = [c for c in tree.COLUMNS if c not in names]
    if not ids or missing:
        raise data.DataError(f"{source}: not a table of Galaxy Zoo predictions: it needs a GalaxyID column "
                             f"and the 37 answers Class1.1 … Class11.6"
                             + (f" (missing {', '.join(missing[:3])}{' …' if len(missing) > 3 else ''})"
                                if missing else ""))
    crowd = [f"crowd {c}" for c in tree.COLUMNS]
    spread = [f"{c} spread" for c in tree.COLUMNS]
    return (ids[0], crowd if all(c in names for c in crowd) else [],
            spread if all(c in names for c in spread) else [])


def key(source) -> str:
    """Identity of a predictions table's current files (names, sizes, modification times)."""
    h = hashlib.sha1(f"{VERSION}".encode())
    for f in _source_files(Path(source)):
        h.update(computed.file_key(f).encode())
    return h.hexdigest()[:16]


def _enriched(batch: pd.DataFrame, id_column: str, crowd: list[str], spread: list[str]) -> pd.DataFrame:
    truth = batch[crowd].to_numpy(np.float32) if crowd else None
    table = evaluate.predictions_table(batch[id_column].to_numpy(), batch[list(tree.COLUMNS)].to_numpy(),
                                               truth)
    if spread:
        table[[catalog.col(c, "spread") for c in tree.COLUMNS]] = batch[spread].to_numpy(np.float32)
    return catalog.enrich(table)


def _slices(batches):
    """pandas frames of CHUNK rows from record batches of any size (a part of `gz predict` holds
    2,048 rows): few, large chunks keep a column one array to read."""
    held, rows = [], 0
    for batch in batches:
        held.append(batch)
        rows += batch.num_rows
        if rows >= CHUNK:
            yield pa.Table.from_batches(held).to_pandas()
            held, rows = [], 0
    if rows:
        yield pa.Table.from_batches(held).to_pandas()


def build(source, cache_dir, progress=None) -> Path:
    """The enriched catalogue of the predictions at `source` (a `gz predict` Parquet folder, a
    Parquet file or a CSV), written once to `cache_dir/catalogues/` and reused while the source's
    files are unchanged: `<key>.arrow` (column by column), beside it `<key>.rows.npy` (the
    predictions row by row, from which a page's rows are enriched again: reading a row of a
    column-wise file would read a block of every column) and `<key>.json`. Bad input raises
    DataError naming the file."""
    source = Path(source)
    target = Path(cache_dir) / "catalogues" / f"{key(source)}.arrow"
    return computed.once(target, lambda report: _build(source, target, report), lambda path: path, None, progress)


def _build(source: Path, target: Path, progress) -> Path:
    """`build`'s work, by the one process that holds the entry's lock."""
    atomic.remove_stale(target.parent, target.stem)  # a killed build's leftovers
    tmp = {p: atomic.temporary(p) for p in (target, _rows_file(target))}
    writer = None
    try:
        dataset = _dataset(source)
        id_column, crowd, spread = _columns_of(source, dataset.schema.names)
        inputs, total, done, empty = [*tree.COLUMNS, *crowd, *spread], dataset.count_rows(), 0, None
        if not total:
            raise data.DataError(f"{source}: the predictions table has no rows")
        rows = np.lib.format.open_memmap(tmp[_rows_file(target)], "w+", np.float32, (total, len(inputs)))
        for frame in _slices(dataset.to_batches(columns=[id_column, *inputs])):
            rows[done:done + len(frame)] = frame[inputs].to_numpy(np.float32)
            frame = _enriched(frame, id_column, crowd, spread)
            chunk = pa.RecordBatch.from_pandas(frame, preserve_index=False)
            writer = writer or pa.ipc.new_file(str(tmp[target]), chunk.schema)
            blank = set(frame.columns[frame.isna().all().to_numpy()])
            empty = blank if empty is None else empty & blank
            writer.write_batch(chunk)
            done += len(frame)
            if progress:
                progress(done, total)
        rows.flush()
        del rows
        writer.close()
        writer = None
        _finish(tmp, target, {"rows": done, "empty": sorted(empty), "source": str(source), "inputs": inputs,
                              "crowd": crowd, "spread": spread})
    except (pa.ArrowInvalid, OSError, ValueError) as e:  # ValueError: also bytes that are not text
        if isinstance(e, data.DataError):
            raise
        raise data.DataError(f"{source}: cannot read the predictions ({e})") from e
    finally:
        if writer is not None:
            writer.close()
        for path in tmp.values():
            path.unlink(missing_ok=True)
    return target


def _rows_file(target: Path) -> Path:
    return target.with_suffix(".rows.npy")


def _finish(tmp: dict[Path, Path], target: Path, meta: dict) -> None:
    """Move the finished files into place, fsynced, the metadata first and the Arrow file last: a
    catalogue found at `target` is complete."""
    side = target.with_suffix(".json")
    tmp[side] = atomic.temporary(side)
    tmp[side].write_text(json.dumps(meta))
    for final in (side, _rows_file(target), target):
        with open(tmp[final], "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp[final], final)


class _Rows:
    def __init__(self, catalogue: "Catalogue"):
        self.catalogue = catalogue

    def __getitem__(self, rows) -> pd.DataFrame:
        """The rows at these positions, every column: enriched again from their predictions."""
        c, rows = self.catalogue, np.atleast_1d(np.asarray(rows, dtype=np.int64))
        frame = pd.DataFrame(np.asarray(c.rows[rows]), columns=c.meta["inputs"])
        frame.insert(0, "GalaxyID", c["GalaxyID"].to_numpy()[rows])
        return _enriched(frame, "GalaxyID", c.meta["crowd"], c.meta["spread"])


class Catalogue:
    """The enriched catalogue file of `build`, memory-mapped and read a column at a time (see the
    module's docstring). Columns that hold no value at all (e.g. the crowd's, without labels) are
    left out."""

    def __init__(self, path):
        self.path = Path(path)
        self.meta = json.loads(self.path.with_suffix(".json").read_text())
        self.arrow = pa.ipc.open_file(pa.memory_map(str(self.path))).read_all()
        self.rows = np.load(_rows_file(self.path), mmap_mode="r")
        self.columns = pd.Index([c for c in self.arrow.column_names if c not in set(self.meta["empty"])])
        self._kept: OrderedDict[str, pd.Series] = OrderedDict()
        self._lock = threading.Lock()  # one catalogue serves every session of the server
        self.iloc = _Rows(self)

    def __len__(self) -> int:
        return self.arrow.num_rows

    def __contains__(self, column) -> bool:
        return column in self.columns

    def __getitem__(self, column):
        if isinstance(column, list):
            return self.arrow.select(column).to_pandas()
        if column not in self:
            raise KeyError(column)
        with self._lock:
            if column not in self._kept:
                self._kept[column] = pd.Series(self.arrow.column(column).to_numpy(), name=column)
                while len(self._kept) > KEEP_COLUMNS:
                    self._kept.popitem(last=False)
            self._kept.move_to_end(column)
            return self._kept[column]

    def __getattr__(self, column):  # table.GalaxyID, as on a DataFrame
        if column.startswith("_") or column not in self.__dict__.get("columns", ()):
            raise AttributeError(column)
        return self[column]


def image_of(folder, galaxy_id) -> Path | None:
    """The image file of `galaxy_id` in `folder` (Kaggle layout or plain, named by id), or None."""
    images = data.find_images(Path(folder))
    return next((p for p in (images / f"{int(galaxy_id)}{s}" for s in data.IMAGE_SUFFIXES) if p.is_file()), None)
