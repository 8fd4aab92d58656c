"""The Train page's questions. `choose`: which images, what to learn from them (the Galaxy Zoo tree
from the folder's crowd answers, or columns of a labels CSV with any id column: regression or
classes, in units typed in or read from the header) and where to start (the shipped model's
backbone, or scratch), outside the form, as each answer changes the questions after it. `settings`:
the training form, with the defaults of what is learnt, and the run's TrainConfig. They return the
user's choices; the reading is gzcore's (data, targets)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import streamlit as st

from gzcore import checkpoint, data, models, runs, targets, train
from gzcore.dashboard import access

TREE, CSV = "tree", "csv"
SCRATCH, SHIPPED = "scratch", "shipped"
CLASSES_UP_TO = 20  # a column of numbers with at most this many values may be read as classes
# the widget keys that follow the folder (cleared when it changes, so their defaults follow it)
FOLLOW_FOLDER = ("train_learn", "train_labels", "train_targets", "train_kind", "train_units")


@dataclass(frozen=True)
class Learn:
    folder: Path
    labels: Path | None = None       # None: the tree, from the folder's crowd answers
    targets: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    classes: bool = False            # one column of numbers read as class names
    init: Path | None = None         # fine-tune from this checkpoint's backbone
    ready: bool = True               # False: something is missing; the page says what

    @property
    def mode(self) -> str:
        return TREE if self.labels is None else CSV


def _follow_folder():
    for key in FOLLOW_FOLDER:
        st.session_state.pop(key, None)


def _use_folder(path: str):
    st.session_state.train_data = path
    _follow_folder()


def choose(loaded: targets.Task, home_labels: Path | None, data_dir: Path) -> Learn:
    """The folder, what to learn and where to start, as the user chose them; `loaded` is the loaded
    model's task and `home_labels` the labels CSV chosen on Home (their defaults)."""
    public = access.public()
    st.session_state.setdefault("train_data", access.named(data_dir))  # public mode: not the server's folders
    folder = Path(st.text_input("Data folder", key="train_data", disabled=public, on_change=_follow_folder,
                                help="The data folder in use (choose another on Home)" if public else
                                "Kaggle layout, or any folder of <id>.jpg, .png or .fits images")
                  .strip()).expanduser()
    if public:
        folder = data_dir
    try:
        data.find_images(folder)
    except data.DataError as e:
        inside = data.image_folders_inside(folder) if folder.is_dir() else []
        if not inside:
            st.error(access.shown(str(e)))
            return Learn(folder, ready=False)
        st.warning(access.shown(f"`{folder}` holds no images itself; its folder `{inside[0].name}/` does."))
        st.button(access.shown(f"Use {inside[0]}"), type="primary", key="train_use_inside",
                  on_click=_use_folder, args=(str(inside[0]),))
        return Learn(folder, ready=False)

    kaggle = (folder / data.LABELS_FILE).is_file()
    near = targets.labels_near(folder)
    st.session_state.setdefault("train_learn", TREE if kaggle and loaded.kind == "tree" else CSV)
    mode = st.segmented_control(
        "Learn", [TREE, CSV], key="train_learn", format_func={
            TREE: "The Galaxy Zoo tree (the folder's crowd answers)",
            CSV: "Columns of a labels CSV (any target)"}.get) or TREE
    if mode == TREE:
        if not kaggle:
            st.info(f"No `{data.LABELS_FILE}` in this folder, so no crowd answers to learn: choose "
                    f"“Columns of a labels CSV”.")
            return Learn(folder, ready=False)
        return Learn(folder)

    default_csv = home_labels if home_labels and loaded.kind != "tree" else (near[0] if near else None)
    # public mode: named by its place under an allowed root (access.named), never the server's path
    st.session_state.setdefault("train_labels", access.named(default_csv) if default_csv else "")
    labels_box = st.text_input("Labels CSV (first column: the image id, e.g. objID; then the targets)",
                               key="train_labels", placeholder="labels.csv" if public else "/path/to/labels.csv",
                               help="Found beside the images: " + ", ".join(p.name for p in near) if near
                               else None).strip()
    if not labels_box:
        st.info("Name a labels CSV: its first column names each image (<id>.jpg), the others are "
                "targets to learn.")
        return Learn(folder, ready=False)
    labels = Path(access.located(labels_box)).expanduser()
    try:
        access.admit("labels", str(labels))
        if not labels.is_file():
            raise data.DataError(f"{labels}: no such file")
        id_column, columns = targets.columns(labels)
    except (data.DataError, access.Refused) as e:
        st.error(access.shown(str(e)))
        return Learn(folder, ready=False)
    by_name = {c.name: c for c in columns}
    usable = [c.name for c in columns if c.known]
    wanted = [c for c in loaded.label_columns if c in by_name] if loaded.kind != "tree" else []
    first = next((c.name for c in columns if c.numbers and c.known), usable[0] if usable else None)
    st.session_state.setdefault("train_targets", wanted or ([first] if first else []))
    picked = st.multiselect(
        f"Target column(s) · the images are named by `{id_column}`", usable, key="train_targets",
        format_func=lambda n: f"{n} ({'numbers' if by_name[n].numbers else 'text'}, {by_name[n].known:,} "
                              f"known, {by_name[n].distinct:,} distinct)")
    if not picked:
        st.info("Pick the column(s) to learn: numbers are a regression target, a column of names the "
                "classes of a classifier.")
        return Learn(folder, ready=False)
    chosen = [by_name[n] for n in picked]
    text = [c.name for c in chosen if not c.numbers]
    if text and len(chosen) > 1:
        st.error(f"{', '.join(text)} holds text (class names): a classifier learns one column; pick it alone.")
        return Learn(folder, ready=False)
    left, right = st.columns(2)
    classes = bool(text)
    if len(chosen) == 1 and chosen[0].numbers and chosen[0].distinct <= CLASSES_UP_TO:
        classes = left.segmented_control("Learn it as", ["regression", "classes"], default="regression",
                                         key="train_kind") == "classes"
    units = ()
    if classes:
        left.caption(f"A classifier of `{chosen[0].name}`: " +
                     ("its values are the class names" if chosen[0].numbers else f"{chosen[0].distinct} classes"))
    else:
        st.session_state.setdefault("train_units", ", ".join(c.units for c in chosen) if any(c.units for c in chosen)
                                    else "")
        typed = left.text_input("Units" + (" (one per target, separated by commas)" if len(chosen) > 1 else ""),
                                key="train_units", placeholder="e.g. dex",
                                help="Kept in the checkpoint and shown with every value: 8.94 ± 0.02 dex. "
                                     "A header such as `oh_p50 [dex]` gives them.").strip()
        units = tuple(u.strip() for u in typed.split(",")) if typed else ()
        if units and len(units) != len(chosen):
            st.error(f"{len(units)} units for {len(chosen)} targets: give one per target, separated by commas.")
            return Learn(folder, ready=False)
    start = right.segmented_control(
        "Start from", [SCRATCH, SHIPPED], default=SCRATCH, key="train_start",
        format_func={SCRATCH: "Scratch", SHIPPED: "The shipped model (fine-tune)"}.get,
        help="Fine-tuning starts from the shipped default.pt's backbone (its architecture, crop and input "
             "size) under a new head, the backbone learning at a fraction of the head's rate. For "
             "metallicity from 400 SDSS images, scratch did as well in 5 minutes (docs/BENCHMARKS.md)") or SCRATCH
    init = None
    if start == SHIPPED:
        try:
            init = checkpoint.default()
        except checkpoint.CheckpointError as e:
            st.error(access.shown(str(e)))
            return Learn(folder, ready=False)
    return Learn(folder, labels, tuple(picked), units, classes and not text, init)


def settings(learn: Learn, teacher: Path | None, busy: bool) -> train.TrainConfig | None:
    """The training form, with the defaults of what is learnt (`runs.QUICK_TREE`, `runs.FIRST_TARGET`;
    each mode's when it is chosen; a public demo's capped, `access.TRAINING`); the run's config once
    "Start training" is pressed, else None. `teacher`: a tree model the tree mode may distil."""
    tree_mode, public, cap = learn.mode == TREE, access.public(), access.TRAINING
    defaults = runs.QUICK_TREE if tree_mode else runs.FIRST_TARGET
    if public:
        st.caption(f"A public demo: runs last at most {cap['minutes']:g} minute, "
                   f"{cap['epochs']} epochs and {cap['subset']} galaxies, one at a time")
        defaults = replace(defaults, minutes=min(defaults.minutes or cap["minutes"], cap["minutes"]),
                           epochs=min(defaults.epochs, cap["epochs"]),
                           subset=min(defaults.subset or cap["subset"], cap["subset"]))
    fresh = st.session_state.get("_train_defaults") != learn.mode  # each mode's defaults when it is chosen
    st.session_state["_train_defaults"] = learn.mode
    for key, value in dict(train_minutes=float(defaults.minutes or 0), train_epochs=defaults.epochs,
                           train_subset=defaults.subset or 0, train_lr=defaults.lr).items():
        st.session_state[key] = value if fresh else st.session_state.get(key, value)
    if not tree_mode:
        st.caption(access.shown(f"Trains {', '.join(learn.targets)} from `{learn.labels}`" +
                                (f" ({', '.join(learn.units)})" if learn.units else "") +
                                (f", fine-tuning `{learn.init.name}`" if learn.init else ", from scratch")))
    with st.form("train_form", border=True):
        cols = st.columns(5)
        name = cols[0].selectbox("Model", list(models.BACKBONES), key="train_model", disabled=learn.init is not None,
                                 help="Fine-tuning keeps the shipped model's own" if learn.init else None)
        minutes = cols[1].number_input("Minutes (0 = no limit)", 0.0, cap["minutes"] if public else 600.0,
                                       step=0.5, key="train_minutes",
                                       help="The run ends after this long, however many epochs that makes; "
                                            "0: after the epochs")
        epochs = cols[2].number_input("Epochs", 1, cap["epochs"] if public else 10_000, key="train_epochs")
        subset = cols[3].number_input("Training galaxies (0 = all)", 1 if public else 0,
                                      cap["subset"] if public else None, step=64, key="train_subset")
        lr = cols[4].number_input("Peak learning rate", 1e-5, 1.0, step=5e-4, format="%.4f", key="train_lr")
        if not tree_mode:
            cols = st.columns(5)
            held = cols[0].number_input("Held out (fraction)", 0.05, 0.5, defaults.val_fraction, step=0.05,
                                        key="train_val", help="Never trained on: the new model is scored on them")
            batch = cols[1].number_input("Batch size", 4, 1024, defaults.batch_size, step=8, key="train_batch")
            backbone = cols[2].number_input("Backbone's learning rate (× the head's)", 0.0, 1.0, defaults.backbone_lr,
                                            step=0.05, key="train_backbone_lr", disabled=learn.init is None,
                                            help="Fine-tuning only: 0 freezes the backbone, 1 trains all alike")
        teacher = teacher if tree_mode else None
        distil = st.checkbox(f"Distil from the loaded model (`{teacher.name}`): learn its answers (8-view TTA) "
                             "on every image of the folder, labelled or not, with the crowd's where known; the "
                             "student keeps its crops and held-out galaxies", key="train_distil") if teacher else False
        started = st.form_submit_button("Start training", type="primary", disabled=busy or not learn.ready,
                                        help="Another run is in progress on this server" if busy else None)
    if not started:
        return None
    cfg = train.TrainConfig(model=name, epochs=int(epochs), subset=int(subset) or None, lr=float(lr),
                            threads=1, tta=False,  # one thread: the dashboard stays responsive
                            minutes=min(minutes or cap["minutes"], cap["minutes"]) if public else minutes or None,
                            teacher=str(teacher) if distil else None)
    if tree_mode:
        return cfg
    # a labels CSV's targets; rows without an image are skipped and listed
    return replace(cfg, labels=str(learn.labels), targets=learn.targets, units=learn.units, classes=learn.classes,
                   init=str(learn.init) if learn.init else None, backbone_lr=float(backbone),
                   val_fraction=float(held), batch_size=int(batch), skip_bad=True)
