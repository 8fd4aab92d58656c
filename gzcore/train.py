"""One training routine for CPU and CUDA: AdamW + one-cycle schedule, MSE (the Kaggle metric
squared), mixed precision where the hardware gains from it, validation every epoch (in fp32),
atomic checkpoints, resume, early stopping, an LR finder and progress callbacks.

Device and precision are settled once in `Setup`, the batch size in `with_batch`; `Learner.step`
is the one training step that `fit` and `lr_find` share. On a GPU the loop never waits for the
device: losses add up there and are read back once per epoch (`Readback` for the step events).
"""
from __future__ import annotations

import collections
import contextlib
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from . import atomic, augment, checkpoint, data, distill, distributed, evaluate, models, targets, threads


@dataclass(frozen=True)
class TrainConfig:
    model: str = "dieleman"       # backbone name, see models.BACKBONES
    width: int | None = None      # first-stage channels (None = the model's default)
    epochs: int = 30              # used when `minutes` is None
    minutes: float | None = None  # wall-clock budget for the whole run (schedule follows time)
    # None: 64 on a CPU; on a GPU 1024 with `lr` scaled by sqrt(1024 / 64) = 4 (square-root
    # scaling, as suits Adam; the one-cycle warm-up eases the start). See with_batch
    batch_size: int | None = None
    lr: float = 2e-3              # peak learning rate of the one-cycle schedule (at batch 64)
    weight_decay: float = 1e-4
    warmup: float = 0.15          # fraction of the run spent warming up
    val_fraction: float = 0.1
    seed: int = 0                 # validation split, and weights and batch order unless init_seed
    init_seed: int | None = None  # weights and batch order alone (ensemble members share a split)
    subset: int | None = None     # train on the first N training galaxies only (quick runs)
    input_size: int = 56          # model input side; the cache keeps a margin for shifts/rotations
    augment: str = "dihedral"     # dihedral | affine, see gzcore.augment
    # a box around the galaxy, at least 160 of the 424 px, stored at 63 px: small galaxies fill
    # more of the input (0.001-0.002 better in 10 minutes than the central 232 px; docs/BENCHMARKS.md,
    # notes); 56 px input from 63 px crops gives 1.2-1.3x the epochs of 64 from 72
    preprocess: data.Preprocess = data.Preprocess(crop="roi", crop_px=data.CROP_FIELDS["roi"], size=63)
    precision: str = "auto"       # auto | fp32 | bf16 | fp16
    device: str = "auto"          # auto | cpu | cuda
    patience: int | None = None   # early stopping: epochs without improvement
    tta: bool = True              # 8-view test-time augmentation for the final validation score
    swa: float = 0.0              # stochastic weight averaging over the epochs of the run's last fraction (0: off)
    answer_weights: tuple[float, ...] | None = None  # per-answer MSE weights (37), None = plain MSE
    skip_bad: bool = False        # skip unreadable images / unlabelled rows instead of stopping
    threads: int | None = None    # torch CPU threads (None: the cores other processes leave free, each epoch)
    labels: str | None = None     # a CSV of targets (first column: the image id); None = Kaggle answers
    targets: tuple[str, ...] = () # its columns to learn (numbers: regression; class names: a classifier)
    units: tuple[str, ...] = ()   # the targets' units, one each, kept in the checkpoint (): their headers'
    classes: bool = False         # one column of numbers read as class names (0, 1, 2): a classifier
    init: str | None = None       # fine-tune: start from this checkpoint's backbone (see with_init)
    backbone_lr: float = 0.1      # fine-tuning: the backbone's learning rate relative to the head's
    teacher: str | None = None    # distil: learn this checkpoint's answers too (see with_teacher)
    crowd_weight: float = 0.5     # distillation targets: this x the crowd's answer + the rest x the teacher's
    teacher_tta: bool = True      # the teacher answers with 8-view TTA
    compile: bool = False         # torch.compile the model in `fit` (CUDA graphs on a GPU): for long runs

    def __post_init__(self):
        if self.augment not in augment.POLICIES:
            raise ValueError(f"unknown augmentation {self.augment!r}; choose one of "
                             f"{', '.join(augment.POLICIES)}")
        if self.width is not None and not models.has_width(self.model):
            raise ValueError(f"model {self.model!r} has no width option (dieleman and xresnet do)")
        if self.width is not None:
            models.check_size(self.model, self.width)  # before anything is allocated
        if bool(self.labels) != bool(self.targets):
            raise ValueError("a labels CSV (--labels) and its target columns (--target) go together")
        if self.units and len(self.units) != len(self.targets):
            raise ValueError(f"{len(self.units)} units (--units) for {len(self.targets)} targets: give one "
                             f"per --target")
        if self.teacher and (self.labels or self.init):
            raise ValueError("distillation learns the teacher's 37 answers: it takes no --labels or --init")
        if not 0 <= self.swa < 1:
            raise ValueError(f"SWA fraction {self.swa} is not in [0, 1)")
        if not 0 <= self.crowd_weight <= 1:
            raise ValueError(f"crowd weight {self.crowd_weight} is not in [0, 1]")


def cpu_has_native_bf16() -> bool:
    """bf16 autocast only pays on CPUs with bf16 instructions (AVX512-BF16 or AMX); elsewhere it
    is emulated and slower than fp32 (measured: 0.55x on this project's AVX-512 CI machine).
    GZ_CPU_BF16=1 or 0 overrides the detection (to try either path on any CPU)."""
    forced = os.environ.get("GZ_CPU_BF16", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    if forced:
        raise ValueError(f"GZ_CPU_BF16={forced!r}: use 1 (bf16 instructions) or 0 (none)")
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@dataclass
class Setup:
    """Device and training precision, decided once (`precision="auto"` resolved)."""
    device: torch.device
    precision: str

    @classmethod
    def choose(cls, device: str = "auto", precision: str = "auto") -> "Setup":
        dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                           ("cpu" if device == "auto" else device))
        if precision == "auto":
            if dev.type == "cuda":
                precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
            else:
                precision = "bf16" if cpu_has_native_bf16() else "fp32"
        return cls(dev, precision)

    def describe(self) -> dict:
        """{'device', 'precision', 'threads'} as resolved (threads: torch's, on a CPU), for
        checkpoints and printed summaries."""
        threads = torch.get_num_threads() if self.device.type == "cpu" else None
        return {"device": str(self.device), "precision": self.precision, "threads": threads}

    def autocast(self):
        """The mixed-precision context of the training forward pass; a no-op for fp32."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def compile(self, model: torch.nn.Module) -> torch.nn.Module:
        """`model` through torch.compile: on a GPU with CUDA graphs (a step's hundreds of kernel
        launches replayed as one), on a CPU inductor's default."""
        return torch.compile(model, mode="reduce-overhead" if self.device.type == "cuda" else None)


CPU_BATCH, GPU_BATCH = 64, 1024


def with_batch(cfg: TrainConfig, device: torch.device) -> TrainConfig:
    """`cfg` with its batch size settled for `device`: as given, or (None) `CPU_BATCH` on a CPU and
    `GPU_BATCH` on a GPU, where the peak learning rate grows by the square root of the batch's
    growth. A run records the values it used (the checkpoint's train_config)."""
    if cfg.batch_size is not None:
        return cfg
    if device.type != "cuda":
        return replace(cfg, batch_size=CPU_BATCH)
    return replace(cfg, batch_size=GPU_BATCH, lr=cfg.lr * math.sqrt(GPU_BATCH / CPU_BATCH))


def one_cycle(progress: float, peak: float, warmup: float) -> float:
    """Learning rate at `progress` in [0, 1]: cosine warm-up to `peak`, cosine decay to ~0."""
    p = min(max(progress, 0.0), 1.0)
    if p < warmup:
        return peak * (0.04 + 0.96 * (1 - math.cos(math.pi * p / warmup)) / 2)
    return peak * (1 + math.cos(math.pi * (p - warmup) / (1 - warmup))) / 2 + peak * 1e-4


def loss_fn(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Mean squared error over the known cells of `target` (NaN = unknown: no loss), each answer
    weighted by `weights` when given."""
    known = ~torch.isnan(target)
    sq = (pred.float() - torch.nan_to_num(target)) ** 2 * known
    if weights is not None:
        sq = sq * weights
    return sq.sum() / known.sum().clamp(min=1)


def class_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the rows whose class (an index in target[:, 0]) is known."""
    known = ~torch.isnan(target[:, 0])
    classes = torch.nan_to_num(target[:, 0]).long()
    per_row = torch.nn.functional.cross_entropy(logits.float(), classes, reduction="none")
    return (per_row * known).sum() / known.sum().clamp(min=1)


@dataclass
class Prepared:
    """Everything a run reads: crops (memory-mapped uint8), labels, split, normalisation."""
    galaxies: data.GalaxySet
    crops: np.ndarray
    train_idx: np.ndarray
    val_idx: np.ndarray
    mean: list[float]
    std: list[float]
    fingerprint: str
    skipped: list[str] = field(default_factory=list)
    task: targets.Task = targets.TREE  # what the labels are; fitted to the training rows

    @property
    def encoded(self) -> np.ndarray:
        """The labels as the loss reads them (`Task.encode`)."""
        return self.task.encode(self.galaxies.labels)


def prepare(data_dir, cfg: TrainConfig, cache_dir=None, progress=None, teaching=None) -> Prepared:
    """Open one labelled folder or several (a list), decode their crops (cached) and split them, as
    `fit` reads them. The labels are the folders' Kaggle answers, or cfg.targets of cfg.labels.
    With `cfg.teacher` every image counts, labelled or not, and the training rows learn the
    distillation targets (`distill.soft_labels`; the teacher's pass reports to `teaching`). Under
    torchrun the ranks decode the crops together (data.load_crops's `share`)."""
    if cfg.teacher:
        galaxies, task = distill.open_every_image(data_dir, skip_bad=cfg.skip_bad), targets.TREE
    else:
        galaxies, task = targets.open_labelled(data_dir, cfg.labels, cfg.targets, skip_bad=cfg.skip_bad,
                                               units=cfg.units, classes=cfg.classes)
    crops, galaxies = data.load_crops(galaxies, cfg.preprocess, cache_dir=cache_dir, skip_bad=cfg.skip_bad,
                                      progress=progress, share=(distributed.rank(), distributed.world()))
    if not len(galaxies):
        folders = ", ".join(map(str, data_dir)) if isinstance(data_dir, (list, tuple)) else data_dir
        skipped = galaxies.skipped
        why = (f"all {len(skipped)} skipped, e.g. {skipped[0]}" if skipped else "no images" if cfg.teacher
               else f"no labelled rows in {cfg.labels or data.LABELS_FILE}")
        raise data.DataError(f"{folders}: no galaxies to train on ({why})")
    fingerprint = data.fingerprint(galaxies, cfg.preprocess)
    if cfg.teacher:
        train_idx, _ = data.split(galaxies, cfg.val_fraction, cfg.seed)
        with distributed.main_first():  # rank 0 asks the teacher, the others read its cached answers
            answers = distill.teacher_answers(cfg.teacher, crops, train_idx, fingerprint=fingerprint,
                                              tta=cfg.teacher_tta, cache_dir=cache_dir, progress=teaching)
        galaxies.labels[train_idx] = distill.soft_labels(galaxies.labels[train_idx], answers,
                                                         cfg.crowd_weight)
    return prepared(galaxies, crops, cfg, fingerprint, task)


def prepared(galaxies: data.GalaxySet, crops: np.ndarray, cfg: TrainConfig, fingerprint: str,
             task: targets.Task = targets.TREE) -> Prepared:
    """`Prepared` from galaxies and their crops: `cfg`'s split (and subset), and the statistics of
    the training rows alone: pixels (at most 2,000 rows) and the task's target normalisation."""
    train_idx, val_idx = data.split(galaxies, cfg.val_fraction, cfg.seed)
    if cfg.subset:
        train_idx = train_idx[:cfg.subset]
    mean, std = channel_stats(crops, np.sort(train_idx[:2000]))
    return Prepared(galaxies, crops, train_idx, val_idx, mean, std, fingerprint, galaxies.skipped,
                    task.fitted(galaxies.labels[train_idx]))


def channel_stats(crops, index, chunk: int = 256) -> tuple[list[float], list[float]]:
    """Per-channel mean and std (in [0, 1] units) of the crops at `index`, read in chunks."""
    total = total_sq = 0.0
    for i in range(0, len(index), chunk):
        x = np.asarray(crops[index[i:i + chunk]], np.float64) / 255.0
        total = total + x.sum(axis=(0, 1, 2))
        total_sq = total_sq + (x ** 2).sum(axis=(0, 1, 2))
    n = len(index) * crops.shape[1] * crops.shape[2]
    mean = total / n
    std = np.sqrt(np.maximum(total_sq / n - mean ** 2, 0)) + 1e-3
    return mean.tolist(), std.tolist()


class Batches:
    """Shuffled (uint8 images, labels) batches on the device. The crops stay memory-mapped on the
    host unless the device is a GPU with room for all of them (then the whole set moves once).
    Of several ranks (`shard` = (rank, ranks)), each takes its share of every epoch's order; their
    `generator`s must agree, so that the shares split one permutation."""

    def __init__(self, crops, labels, index, batch_size, device, generator, shard=(0, 1)):
        self.index, self.batch_size, self.device, self.gen = index, batch_size, device, generator
        self.rank, self.ranks = shard
        on_gpu = device.type == "cuda" and crops.nbytes < 0.5 * torch.cuda.mem_get_info(device)[0]
        self.crops = torch.from_numpy(np.array(crops[index])).to(device) if on_gpu else crops
        self.labels = torch.from_numpy(labels[index]).to(device)
        self.local = on_gpu

    def __len__(self):
        return len(self.index) // self.ranks // self.batch_size  # drop the ragged last batch

    def __iter__(self):
        order = torch.randperm(len(self.index), generator=self.gen).numpy()
        order = order[self.rank::self.ranks][:len(self.index) // self.ranks]  # equal shares
        for b in range(len(self)):
            pos = np.sort(order[b * self.batch_size:(b + 1) * self.batch_size])
            # copies from host memory that never wait for the GPU's queue (no-ops on a CPU)
            at = torch.from_numpy(pos).to(self.device, non_blocking=True)
            if self.local:
                x = self.crops[at]
            else:
                x = torch.from_numpy(np.array(self.crops[self.index[pos]])).to(self.device,
                                                                                  non_blocking=True)
            yield x, self.labels[at]


@dataclass
class Learner:
    """A model with its optimiser and loss scaler on a device: what one training step needs."""
    model: torch.nn.Module
    opt: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    setup: Setup
    cfg: TrainConfig
    gen: torch.Generator
    task: targets.Task = targets.TREE
    answer_weights: torch.Tensor | None = None

    @classmethod
    def create(cls, cfg: TrainConfig, setup: Setup, prep: Prepared, gen: torch.Generator,
               model: torch.nn.Module | None = None) -> "Learner":
        """A fresh model of `cfg` for `prep`'s task (normalised by `prep`'s statistics), the
        backbone of `cfg.init` under a new head, or `model` when given. Fine-tuned backbones learn
        at `cfg.backbone_lr` times the head's rate (a param group's "scale")."""
        if model is None:
            model = (fine_tuned(cfg.init, prep.task) if cfg.init else
                     models.build(cfg.model, head=prep.task.head, in_channels=cfg.preprocess.channels,
                                  n_outputs=len(prep.task.columns), mean=prep.mean, std=prep.std,
                                  width=cfg.width))
        model = model.to(setup.device, memory_format=torch.channels_last)
        if cfg.init:
            groups = [{"params": model.backbone.parameters(), "scale": cfg.backbone_lr},
                      {"params": model.head.parameters(), "scale": 1.0}]
        else:
            groups = [{"params": model.parameters(), "scale": 1.0}]
        # fused on a GPU: one kernel updates every parameter
        opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                fused=(setup.device.type == "cuda") or None)
        weights = None if cfg.answer_weights is None else \
            torch.tensor(cfg.answer_weights, dtype=torch.float32, device=setup.device)
        return cls(model, opt, torch.amp.GradScaler(enabled=setup.precision == "fp16"), setup, cfg,
                   gen, prep.task, weights)

    def loss(self, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.task.kind == "classification":
            return class_loss(output, labels)
        return loss_fn(output, labels, self.answer_weights)

    def step(self, images: torch.Tensor, labels: torch.Tensor, lr: float) -> torch.Tensor:
        """One optimiser step at learning rate `lr` on an augmented uint8 batch; returns the loss,
        on the device (reading it would make the host wait for the step)."""
        for group in self.opt.param_groups:
            group["lr"] = lr * group["scale"]
        x = augment.POLICIES[self.cfg.augment](augment.to_float(images), self.gen,
                                               out_size=self.cfg.input_size)
        with self.setup.autocast():
            loss = self.loss(self.model(x.contiguous(memory_format=torch.channels_last)), labels)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        return loss.detach()


def fine_tuned(path, task: targets.Task) -> models.GalaxyModel:
    """A model for `task` that starts from the backbone of the checkpoint at `path` (of an
    ensemble, its best member by held-out score), with that backbone's pixel normalisation. A tree
    task keeps the tree head too; any other gets a new head."""
    model, ckpt = checkpoint.load(path)
    members = models.members(model)
    scores = (ckpt.get("metrics") or {}).get("member_val_rmse_tta") or [0.0] * len(members)
    source = members[int(np.argmin(scores))]
    tuned = models.build(**{**source.config, "head": task.head, "n_outputs": len(task.columns)})
    tuned.backbone.load_state_dict(source.backbone.state_dict())
    if task.kind == "tree" and source.config.get("head", "tree") == "tree":
        tuned.head.load_state_dict(source.head.state_dict())
    return tuned


def with_teacher(cfg: TrainConfig) -> TrainConfig:
    """`cfg` distilling from its `teacher` checkpoint: the teacher's validation split (no galaxy it
    held out is trained on), crops and input size; unchanged without `teacher`."""
    if not cfg.teacher:
        return cfg
    ckpt = checkpoint.read(cfg.teacher)
    if ckpt["model_config"].get("head", "tree") != "tree":
        raise checkpoint.CheckpointError(f"{cfg.teacher}: predicts {targets.of_checkpoint(ckpt).columns}, "
                                         f"not the tree's 37 answers: only a tree model can teach")
    val_fraction, seed = checkpoint.split_of(ckpt)
    return replace(cfg, val_fraction=val_fraction, seed=seed, preprocess=checkpoint.preprocess_of(ckpt),
                   input_size=ckpt["input_size"])


def with_init(cfg: TrainConfig) -> TrainConfig:
    """`cfg` reading the crops its `init` checkpoint's backbone was trained on (model, width,
    preprocessing and input size follow the checkpoint); unchanged without `init`."""
    if not cfg.init:
        return cfg
    model, ckpt = checkpoint.load(cfg.init)
    source = models.members(model)[0].config
    return replace(cfg, model=source["name"], width=source.get("width"),
                   preprocess=checkpoint.preprocess_of(ckpt), input_size=ckpt["input_size"])


class Schedule:
    """How far the run is, in [0, 1]: by the wall clock when it has a time budget, else by steps.
    A resumed run starts from its checkpoint's progress (steps) or time spent (budget). Ranks
    under torchrun act on `agreed` progress: the budget ends for all at once."""

    def __init__(self, cfg: TrainConfig, steps_per_epoch: int, progress: float = 0.0, spent: float = 0.0,
                 device: torch.device = torch.device("cpu")):
        self.budget = cfg.minutes * 60 if cfg.minutes else None
        self.total_steps = cfg.epochs * steps_per_epoch
        self.steps = 0 if self.budget else round(progress * self.total_steps)
        self.start = time.time() - spent
        self.device = device

    @property
    def progress(self) -> float:
        return (self.elapsed() / self.budget) if self.budget else self.steps / self.total_steps

    def agreed(self) -> float:
        """`progress`, the furthest of the ranks' by the clock (the same on all ranks by steps)."""
        return distributed.agreed_max(self.progress, self.device) if self.budget else self.progress

    def elapsed(self) -> float:
        return time.time() - self.start


@dataclass
class Earlier:
    """What a resumed run takes from its files (empty for a new run): the model, optimiser, history
    and random streams of its last finished epoch from the resume state (`checkpoint.resume_path`;
    without one, as runs of gzcore before it left, from the checkpoint), and from the checkpoint the
    best epoch so far, which stays the best until an epoch beats it."""
    history: list = field(default_factory=list)
    best: float = math.inf
    best_epoch: int | None = None
    best_state: dict | None = None
    progress: float = 0.0
    model: torch.nn.Module | None = None
    optimizer: dict | None = None
    streams: dict = field(default_factory=dict)

    @classmethod
    def read(cls, out, cfg: TrainConfig) -> "Earlier":
        out, state = Path(out), checkpoint.resume_path(out)
        if not (out.is_file() or state.is_file()):
            return cls()
        best_model, best = checkpoint.load(out, expect_model=cfg.model) if out.is_file() else (None, {})
        model, last = (checkpoint.load(state, expect_model=cfg.model) if state.is_file() else
                       (best_model, best))
        metrics = best.get("metrics", {})
        return cls(last["history"], metrics.get("val_rmse", math.inf), metrics.get("epoch"),
                   None if best_model is None else
                   {k: v.detach().clone() for k, v in best_model.state_dict().items()},
                   last.get("progress") or 0.0, model, last.get("optimizer"), last.get("resume") or {})

    @property
    def seconds(self) -> float:
        return self.history[-1]["seconds"] if self.history else 0.0


def _stopped(stop) -> bool:
    return stop is not None and stop.is_set()


class Readback:
    """Step losses for the 'step' events, read without stalling a GPU: each is copied to the host
    asynchronously and read `lag` steps later, when the GPU has finished it (the host stays at
    most `lag` steps ahead; only the run's first read waits). On a CPU each is read at once."""

    def __init__(self, device: torch.device, lag: int = 4):
        self.lag = lag if device.type == "cuda" else 0
        self.pending: collections.deque = collections.deque()
        self.latest: float | None = None

    def __call__(self, loss: torch.Tensor) -> float:
        """Queue `loss`; the newest loss read back so far."""
        done = torch.cuda.Event() if self.lag else None
        self.pending.append((loss.to("cpu", non_blocking=True), done))
        if done is not None:
            done.record()
        while self.pending and (len(self.pending) > self.lag or self.latest is None):
            host, done = self.pending.popleft()
            if done is not None:
                done.synchronize()  # waits for that step alone, not for the steps queued after it
            self.latest = host.item()
        return self.latest


def train_one_epoch(learner: Learner, batches: Batches, schedule: Schedule, epoch: int,
                    callback, stop=None, readback: Readback | None = None) -> tuple[int, torch.Tensor]:
    """One pass over shuffled batches, cut short when the schedule ends or `stop` is set.
    Returns (images seen, summed loss: a float64 scalar on the device, so that the loop never
    waits for the GPU); reports a 'step' event per batch, with a loss from `readback`."""
    cfg = learner.cfg
    readback = readback or Readback(learner.setup.device)
    learner.model.train()
    seen = 0
    loss_sum = torch.zeros((), dtype=torch.float64, device=learner.setup.device)
    for images, labels in batches:
        progress = schedule.agreed()
        if progress >= 1.0 or _stopped(stop):
            break
        loss = learner.step(images, labels, one_cycle(progress, cfg.lr, cfg.warmup))
        schedule.steps += 1
        seen += len(images)
        loss_sum += loss.double() * len(images)
        callback("step", {"epoch": epoch, "progress": progress, "loss": readback(loss)})
    return seen, loss_sum


def validate(model, prep: Prepared, input_size: int, device: torch.device, tta: bool = False) -> float:
    """RMSE on the held-out rows' known labels, in the labels' units (class probabilities against
    one-hot for a classifier; nan when there are none), always in fp32: a score means the same
    whichever precision trained the model."""
    if not len(prep.val_idx):
        return math.nan
    pred = evaluate.predict(model, prep.crops, input_size, index=prep.val_idx, tta=tta, device=device)
    return evaluate.rmse(prep.task.decode(pred), prep.task.comparable(prep.galaxies.labels[prep.val_idx]))


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """torch's CPU thread count set to `threads` (None: unchanged) for the block, then restored."""
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def fit(data_dir, cfg: TrainConfig = TrainConfig(), out=None, callback=None, stop=None,
        resume: bool = False, cache_dir=None, prepared: Prepared | None = None) -> dict:
    """Train a model on a labelled Kaggle-layout folder and return its metrics.

    callback(event, info) is called with event in {'data', 'teacher', 'task', 'step', 'epoch', 'done'}
    ('task': {"task": what is learnt, fitted to the training rows}, once the data is prepared);
    `stop` is an optional threading.Event: set it to end the run after the current batch.
    The best model (by validation RMSE) is written to `out` after every improving epoch, with that
    epoch's metrics ('epoch' names it), and the checkpoint records the device and precision the run
    resolved (metrics) and the batch size and peak learning rate it used (train_config, see
    `with_batch`). After every epoch the resume state (`checkpoint.resume_path(out)`: that epoch's
    model, optimiser and random streams) is written too; a run killed at any point and restarted
    with `resume` continues from its last finished epoch as if never stopped (same seed, threads and
    precision: the same result), and keeps the best epoch. A run that ends (not stopped) removes
    it; a new run (no `resume`) ignores and removes one left by an earlier run. With `cfg.compile`
    the training steps run a compiled model (`Setup.compile`); validation runs the plain one.
    `cfg.threads` applies for the duration of the run; torch's thread count is restored after.

    Under torchrun (`gzcore.distributed`) every rank trains on its share of each epoch's batches
    with DistributedDataParallel; rank 0 reports, and writes the (ordinary) checkpoint.
    `out` is locked for the run (`atomic.held`): a second run onto it fails at once (`atomic.Busy`,
    naming the first one's pid) instead of both writing it.
    """
    cfg = with_teacher(with_init(cfg))
    writer = atomic.held(out, "a training run") if out is not None and distributed.rank() == 0 \
        else contextlib.nullcontext()
    with writer, torch_threads(cfg.threads):
        started = time.time()
        setup = Setup.choose(cfg.device, cfg.precision)
        setup.device = distributed.device_for(setup.device)
        cfg = with_batch(cfg, setup.device)
        joined = distributed.start(setup.device)
        rank, ranks = distributed.rank(), distributed.world()
        callback = callback if callback and rank == 0 else (lambda event, info: None)
        writes = out if rank == 0 else None
        init_seed = cfg.seed if cfg.init_seed is None else cfg.init_seed
        torch.manual_seed(init_seed)
        gen = torch.Generator().manual_seed(init_seed)
        # one process draws batch order and augmentation from one generator; ranks share the
        # order (each takes its share) and augment with generators of their own
        order = gen if ranks == 1 else torch.Generator().manual_seed(init_seed)
        if ranks > 1:
            gen = torch.Generator().manual_seed(init_seed + 1 + rank)
        prep = prepared or prepare(data_dir, cfg, cache_dir,  # the ranks share the crop cache's decoding
                                   progress=lambda d, n: callback("data", {"done": d, "total": n}),
                                   teaching=lambda d, n: callback("teacher", {"done": d, "total": n}))
        callback("task", {"task": prep.task})  # the loss's units: a Train page reads its curves in the labels'
        ran_on = {**setup.describe(), **({"ranks": ranks} if ranks > 1 else {})}
        earlier = Earlier.read(out, cfg) if resume and out else Earlier()
        state_path = checkpoint.resume_path(out) if writes else None
        if state_path and not resume:
            state_path.unlink(missing_ok=True)  # an earlier run's, never to be resumed by this one
        history, best, best_epoch = earlier.history, earlier.best, earlier.best_epoch
        best_state = earlier.best_state
        learner = Learner.create(cfg, setup, prep, gen, model=earlier.model)
        if earlier.optimizer:
            learner.opt.load_state_dict(earlier.optimizer)
        if earlier.streams:  # batch order, augmentation (one process), dropout, as the epoch left them
            torch.set_rng_state(earlier.streams["torch"])
            order.set_state(earlier.streams["order"])
            if "cuda" in earlier.streams and setup.device.type == "cuda":
                torch.cuda.set_rng_state(earlier.streams["cuda"], setup.device)
            if earlier.streams.get("scaler"):
                learner.scaler.load_state_dict(earlier.streams["scaler"])
        model = learner.model
        stale = len(history) - best_epoch if best_epoch else 0
        if ranks > 1:  # gradients averaged over the ranks at every step
            learner.model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[setup.device] if setup.device.type == "cuda" else None)
        if cfg.compile:  # the same parameters: `model` stays the plain module that is saved
            learner.model = setup.compile(learner.model)
        # the running mean of the weights (batch-norm statistics included) of the run's last epochs
        swa = torch.optim.swa_utils.AveragedModel(model, use_buffers=True) if cfg.swa else None
        batches = Batches(prep.crops, prep.encoded, prep.train_idx, cfg.batch_size, setup.device, order,
                          shard=(rank, ranks))
        if len(batches) == 0:
            raise data.DataError(f"{data_dir}: only {len(prep.train_idx)} training galaxies; need at "
                                 f"least one batch of {cfg.batch_size}" + (f" per rank ({ranks})" if ranks > 1 else ""))
        schedule = Schedule(cfg, len(batches), earlier.progress, earlier.seconds, setup.device)

        def save(metrics, path=out, **state):
            checkpoint.save(path, model, preprocess=cfg.preprocess, input_size=cfg.input_size,
                            task=prep.task, metrics={**metrics, **ran_on}, history=history, train_config=_jsonable(cfg),
                            optimizer=learner.opt, progress=min(schedule.progress, 1.0),
                            data_fingerprint=prep.fingerprint, **state)

        def streams() -> dict:
            """The random generators' states and the loss scale, for the resume state."""
            cuda = {"cuda": torch.cuda.get_rng_state(setup.device)} if setup.device.type == "cuda" else {}
            return {"torch": torch.get_rng_state(), "order": order.get_state(),
                    "scaler": learner.scaler.state_dict(), **cuda}

        # unpinned on a CPU: each epoch computes with the cores other processes left free in the last
        free = threads.FreeCores() if cfg.threads is None and setup.device.type == "cpu" else None
        readback = Readback(setup.device)
        while schedule.agreed() < 1.0 and not _stopped(stop):
            epoch = len(history)
            used = free.update() if free else torch.get_num_threads()
            seen, loss_sum = train_one_epoch(learner, batches, schedule, epoch, callback, stop, readback)
            if seen == 0:
                break
            val_rmse = validate(model, prep, cfg.input_size, setup.device)
            history.append({"epoch": epoch + 1, "train_rmse": math.sqrt(float(loss_sum) / seen),
                            "val_rmse": val_rmse, "lr": learner.opt.param_groups[0]["lr"],
                            "seconds": schedule.elapsed(), "images": seen * ranks, "threads": used})
            if val_rmse < best or math.isnan(best):
                best, best_epoch, stale = val_rmse, epoch + 1, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                if writes:
                    save({"val_rmse": val_rmse, "epoch": epoch + 1})
            else:
                stale += 1
            if writes:  # after the best: a crash between the two resumes this epoch, keeping its best
                save({"val_rmse": val_rmse, "epoch": epoch + 1}, state_path, resume=streams())
            if swa is not None and schedule.progress > 1 - cfg.swa:
                swa.update_parameters(model)
            callback("epoch", dict(history[-1], best_val_rmse=best))
            if cfg.patience and stale >= cfg.patience:
                break
        averaged = {}
        if swa is not None and swa.n_averaged > 0:  # kept when it beats the best single epoch
            averaged = {"swa_epochs": int(swa.n_averaged),
                        "swa_val_rmse": validate(swa.module, prep, cfg.input_size, setup.device)}
            if averaged["swa_val_rmse"] < best:
                best, best_epoch = averaged["swa_val_rmse"], None
                best_state = {k: v.detach().clone() for k, v in swa.module.state_dict().items()}
        if best_state is not None:
            model.load_state_dict(best_state)
        result = {"val_rmse": best, "best_epoch": best_epoch, **averaged, "epochs": len(history),
                  "train_images": len(prep.train_idx),
                  "val_images": len(prep.val_idx), **ran_on, "skipped": prep.skipped,
                  "history": history}
        if len(prep.val_idx) and cfg.tta:
            result["val_rmse_tta"] = validate(model, prep, cfg.input_size, setup.device, tta=True)
        if len(prep.val_idx) and prep.task.kind == "classification":
            pred = evaluate.predict(model, prep.crops, cfg.input_size, index=prep.val_idx, tta=cfg.tta,
                                    device=setup.device)
            result["val_accuracy"] = evaluate.accuracy(pred, prep.galaxies.labels[prep.val_idx, 0])
        result["seconds"] = time.time() - started
        if writes:
            save({"epoch": best_epoch, **{k: result[k] for k in (
                "val_rmse", "val_rmse_tta", "val_accuracy", "swa_epochs", "swa_val_rmse", "epochs", "seconds",
                "train_images", "val_images") if k in result}})
            if not _stopped(stop):  # ended: nothing left to resume
                state_path.unlink(missing_ok=True)
        callback("done", dict(result))
        learner.model = model  # the DDP wrapper goes before its process group
        distributed.finish(joined)
        result["task"] = prep.task
        result["model"] = model
        return result


def _jsonable(cfg: TrainConfig) -> dict:
    d = asdict(cfg)
    d["answer_weights"] = list(cfg.answer_weights) if cfg.answer_weights else None
    return d


def with_input_size(cfg: TrainConfig, input_size: int) -> TrainConfig:
    """`cfg` at another model input over the same field; the cached crop keeps a 1/8 margin for the
    random crops of augmentation (56 px from 63, 64 from 72)."""
    return replace(cfg, input_size=input_size, preprocess=replace(cfg.preprocess, size=input_size * 9 // 8))


def with_crop(cfg: TrainConfig, crop: str) -> TrainConfig:
    """`cfg` with another crop mode (see data.Preprocess) over that mode's field in data.CROP_FIELDS."""
    return replace(cfg, preprocess=replace(cfg.preprocess, crop=crop, crop_px=data.CROP_FIELDS[crop]))


def config_from_dict(d: dict) -> TrainConfig:
    """The inverse of the dict stored in checkpoints."""
    d = dict(d)
    d["preprocess"] = data.Preprocess(**d["preprocess"])
    if d.get("answer_weights"):
        d["answer_weights"] = tuple(d["answer_weights"])
    return replace(TrainConfig(), **d)


def lr_find(data_dir, cfg: TrainConfig = TrainConfig(), start: float = 1e-5, end: float = 1.0,
            steps: int = 80, cache_dir=None, prepared: Prepared | None = None) -> dict:
    """Leslie Smith's range test: raise the LR exponentially for `steps` batches (the training step
    of `fit`, augmentation and precision included) and record the smoothed loss. Suggests the LR of
    steepest descent. Returns {'lrs', 'losses', 'suggestion', 'skipped' (bad inputs left out)} and
    `Setup.describe`'s keys.
    `cfg.compile` is left to `fit`: a range test is too short for compiling to pay."""
    cfg = with_teacher(with_init(cfg))
    with torch_threads(cfg.threads):
        setup = Setup.choose(cfg.device, cfg.precision)
        cfg = with_batch(cfg, setup.device)
        torch.manual_seed(cfg.seed)
        gen = torch.Generator().manual_seed(cfg.seed)
        prep = prepared or prepare(data_dir, cfg, cache_dir)
        learner = Learner.create(cfg, setup, prep, gen)
        learner.model.train()
        batches = Batches(prep.crops, prep.encoded, prep.train_idx, cfg.batch_size, setup.device, gen)
        if len(batches) == 0:
            raise data.DataError(f"{data_dir}: only {len(prep.train_idx)} training galaxies; need at "
                                 f"least one batch of {cfg.batch_size}")
        lrs, losses, smooth = [], [], None

        def diverged():
            return len(losses) > 10 and losses[-1] > 4 * min(losses)
        while len(lrs) < steps and not diverged():
            for images, labels in batches:
                lr = start * (end / start) ** (len(lrs) / (steps - 1))
                loss = learner.step(images, labels, lr).item()  # the range test reads every loss
                smooth = loss if smooth is None else 0.9 * smooth + 0.1 * loss
                lrs.append(lr)
                losses.append(smooth)
                if len(lrs) >= steps or diverged():
                    break
        ran_on = setup.describe()
    grads = np.gradient(np.log(np.maximum(losses, 1e-12)), np.log(lrs))
    k = int(np.argmin(grads[: int(np.argmin(losses)) + 1]))
    return {"lrs": lrs, "losses": losses, "suggestion": float(lrs[k]), "skipped": prep.skipped, **ran_on}
