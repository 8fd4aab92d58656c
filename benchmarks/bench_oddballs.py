"""Oddballs, measured on a labelled folder (default: the real sample with checkpoints/default.pt):
how many of the most anomalous galaxies the crowd calls odd, for gzcore.oddballs' score (mean
cosine distance to the k nearest) beside scikit-learn's IsolationForest, and how fast a simulated
user finds rare kinds with `more_like` beside a Rocchio query.

    python -m benchmarks.bench_oddballs [--data DIR] [--checkpoint X.pt] [--threads 1]

The embeddings come from catalog.embeddings (cached; about half a minute for 6,000 galaxies the
first time on one core). Crowd-odd: Class6.1 ≥ 0.5. The anomaly scores are computed over all
galaxies; "held-out" takes the highest-scoring of the checkpoint's held-out galaxies
(checkpoint.split), which the model never trained on (its features learnt Q6 on the others). Reference: the
model's own Class6.1 (supervised, no TTA) on the held-out galaxies."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.ensemble import IsolationForest

from benchmarks import REAL_DATA, ROOT
from gzcore import catalog, checkpoint, computed, data, evaluate, oddballs, tree

TOP = 50
HUNTS = {"odd (Class6.1 ≥ 0.5)": ("Class6.1", 0.5), "ring (Class8.1 ≥ 0.25)": ("Class8.1", 0.25),
         "merger (Class8.6 ≥ 0.25)": ("Class8.6", 0.25), "edge-on (Class2.1 ≥ 0.5)": ("Class2.1", 0.5)}


def hits(score: np.ndarray, odd: np.ndarray, rows: np.ndarray) -> int:
    return int(odd[oddballs.most_anomalous(score, TOP, rows)].sum())


def rocchio(emb, positives, negatives, n=None, beta=0.5):
    """The alternative to oddballs.more_like: rank by similarity to mean(positives) − β mean(negatives)."""
    query = emb[positives].mean(0) - (beta * emb[negatives].mean(0) if len(negatives) else 0)
    score = emb @ query
    score[positives], score[negatives] = -np.inf, -np.inf
    order = np.argsort(-score, kind="stable")[:n]
    return order, score[order]


def hunt(emb, target, rank, seeds=3, shown=TOP, repeat=0) -> tuple[int, int, float]:
    """A user seeds `seeds` random galaxies of `target`, then marks the top-ranked galaxy, one at a
    time, `shown` times -> (targets among the first 12 before any mark, among the `shown`, s per mark)."""
    rng = np.random.default_rng(repeat)
    positives, negatives = list(rng.choice(np.flatnonzero(target), seeds, replace=False)), []
    first = int(target[rank(emb, positives, negatives, 12)[0]].sum())
    found, start = 0, time.perf_counter()
    for _ in range(shown):
        row = int(rank(emb, positives, negatives, 1)[0][0])
        found += bool(target[row])
        (positives if target[row] else negatives).append(row)
    return first, found, (time.perf_counter() - start) / shown


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=str, default=str(REAL_DATA))
    p.add_argument("--checkpoint", type=str, default=str(ROOT / "checkpoints" / "default.pt"))
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, ckpt = checkpoint.load(args.checkpoint)
    held = checkpoint.data_for(ckpt, args.data, labels=True, cache_dir=data.default_cache_dir())
    subject = computed.Subject(held.galaxies, ckpt, Path(args.checkpoint), data.default_cache_dir())
    emb = catalog.embeddings(subject, held.crops, model)
    labels = held.galaxies.labels
    odd = labels[:, tree.COLUMNS.index("Class6.1")] >= 0.5
    everyone, val = np.arange(len(emb)), held.val_idx
    print(f"{len(emb):,} galaxies ({emb.shape[1]}-d embeddings), {len(val)} held out; crowd-odd base rate "
          f"{odd.mean():.1%} over all ({odd.mean() * TOP:.1f} of {TOP} by chance), {odd[val].mean():.1%} "
          f"held out ({odd[val].mean() * TOP:.1f} of {TOP})\n")

    print(f"crowd-odd among the {TOP} most anomalous: held-out · all")
    for k in (5, 10, oddballs.K, 50):
        start = time.perf_counter()
        score = oddballs.anomaly(emb, k=k)
        chosen = " (chosen)" if k == oddballs.K else ""
        print(f"  kNN mean cosine distance, k={k}{chosen}: {hits(score, odd, val)} · {hits(score, odd, everyone)}"
              f"  ({time.perf_counter() - start:.2f} s)")
    for seed in (0, 1, 2):
        start = time.perf_counter()
        score = -IsolationForest(n_estimators=200, random_state=seed).fit(emb).score_samples(emb)
        print(f"  IsolationForest, 200 trees, seed {seed}: {hits(score, odd, val)} · {hits(score, odd, everyone)}"
              f"  ({time.perf_counter() - start:.2f} s)")
    own = evaluate.predict(model, held.crops, ckpt["input_size"], index=val)[:, tree.COLUMNS.index("Class6.1")]
    print(f"  reference, the model's own Class6.1 (supervised): {int(odd[val][np.argsort(-own)[:TOP]].sum())} "
          f"· -\n")

    print(f"hunts over all galaxies: 3 random seeds of a kind, then {TOP} galaxies shown and marked one at a "
          f"time; of its kind among the first 12 shown (before any mark) · among the {TOP} (mean of 3 hunts)")
    for name, (column, threshold) in HUNTS.items():
        target = labels[:, tree.COLUMNS.index(column)] >= threshold
        for method, rank in (("more_like (logistic regression)", oddballs.more_like), ("Rocchio, β=0.5", rocchio)):
            runs = np.array([hunt(emb, target, rank, repeat=r) for r in range(3)])
            print(f"  {name}, {target.sum()} galaxies ({target.mean():.1%}), {method}: {runs[:, 0].mean():.1f} · "
                  f"{runs[:, 1].mean():.1f}  ({runs[:, 2].mean() * 1000:.0f} ms a mark)")


if __name__ == "__main__":
    main()
