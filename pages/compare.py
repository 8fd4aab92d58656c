"""Compare models: the model beside a second checkpoint on the galaxies neither trained on: RMSE per
question (or output) with paired bootstrap intervals, and the galaxies where the two disagree most."""
import os

import pandas as pd
import streamlit as st

from gzcore import compare, shipped
from gzcore.dashboard import charts, navigation, state

navigation.through_app()  # app.py's set-up first, even when a fresh server's first request is this page

st.title("Compare models")
ctx = state.context()
state.labelled(ctx)


def _choose(key):
    state.compare_with(st.session_state[key].strip())


def _preset(a, b):
    state.choose("model", str(a))
    state.compare_with(b)


def label(path):
    info = state.checkpoint_info(path)
    if info is None:
        return f"{os.path.basename(path)} (missing or unreadable)"
    return f"{info['name']} · {info['model']} · val RMSE {info['val_rmse']:.4f}"


shipped_model = shipped.folder() / ("synthetic.pt" if state.data_dir() == state.universe_dir() else "default.pt")
newest_run = next((p for p in state.known_checkpoints() if p.parent == state.runs_dir()), None)
presets = [(f"Newest training run ({newest_run.name}) against the shipped {shipped_model.name}", newest_run,
            shipped_model)] if newest_run and shipped_model.is_file() else []
if (shipped.folder() / "ensemble.pt").is_file():
    presets.append(("The shipped student (default.pt) against its teacher (ensemble.pt)",
                    shipped.folder() / "default.pt", shipped.folder() / "ensemble.pt"))
other = state.comparison_path()
options = [""] + list(dict.fromkeys([str(other)] * bool(other) + [str(p) for p in state.known_checkpoints()
                                                                 if p != ctx.ckpt_path]))
st.session_state.compare_model = str(other or "")
left, right = st.columns(2)
left.markdown(f"**A, the model:** `{ctx.ckpt_path.name}` (choose it on Home)")
right.selectbox("**B, compared with**", options, key="compare_model", on_change=_choose, args=("compare_model",),
                format_func=lambda p: label(p) if p else "choose a checkpoint")
right.text_input("…or another checkpoint file", key="compare_model_path", on_change=_choose,
                 args=("compare_model_path",), placeholder="/path/to/model.pt")
for i, (text, a, b) in enumerate(presets):
    left.button(text, key=f"compare_preset_{i}", on_click=_preset, args=(a, b), icon=":material/compare_arrows:",
                help=f"Sets the model of every page to {a.name}")
if other is None:
    st.info("Choose a second checkpoint (B) to compare the model (A) with, or a preset.")
    st.stop()
try:
    c = state.comparison(ctx, other)
except state.ERRORS as e:
    state.error(str(e))
    st.stop()

st.caption(f"A `{c.names[0]}` · B `{c.names[1]}` · {c.basis} · predictions as the catalogue makes them (8-view "
           f"TTA for a single model, one view for an ensemble) · B − A with its {compare.LEVEL:.0%} paired "
           f"bootstrap interval over the galaxies: negative means B is better; 'within noise' when the "
           f"interval holds 0")
if c.warning:
    st.warning(c.warning)
overall, unit = c.overall, f" {c.task.shared_unit}" if c.task.shared_unit else ""  # a value in the labels' units
cols = st.columns(3)
cols[0].metric(f"A: {c.task.unit_name}", f"{overall['RMSE A']:.4f}{unit}", help=f"Over the {c.basis}")
cols[1].metric(f"B: {c.task.unit_name}", f"{overall['RMSE B']:.4f}{unit}", delta=f"{overall['B − A']:+.4f}{unit}",
               delta_color="inverse", help=f"Over the {c.basis}")
cols[2].metric("Verdict", overall.verdict, help=f"B − A in [{overall.low:+.4f}, {overall.high:+.4f}]{unit}")


def shown(scores: pd.DataFrame) -> pd.DataFrame:
    """The scores as the table shows them: an output named with its units, and its interval."""
    out = scores[["name", "galaxies", "RMSE A", "RMSE B", "B − A", "verdict"]].copy()
    out.insert(5, "interval", [f"[{lo:+.4f}, {hi:+.4f}]" for lo, hi in zip(scores.low, scores.high)])
    if scores.level.iat[0] == "answer":
        out["name"] = [c.task.named(name) for name in out.name]
    return out.rename(columns={"name": "question" if scores.level.iat[0] == "question" else "output"})


tree_model = c.task.kind == "tree"
table = c.per_question if tree_model else c.per_answer
st.subheader("Per question" if tree_model else "Per output")
st.caption(f"Table and bars: both models over the {c.basis}; 'galaxies': those of them with labels for the "
           f"{'question' if tree_model else 'output'}")
left, right = st.columns(2)
left.dataframe(shown(table), hide_index=True, key="compare_table", column_config={
    k: st.column_config.NumberColumn(format=f"%.4f{unit}") for k in ("RMSE A", "RMSE B", "B − A")})
bars = pd.DataFrame([{"model": f"{side} · {name}", "output": row["name"] if tree_model else c.task.named(row["name"]),
                      "RMSE": row[f"RMSE {side}"]} for _, row in table.iterrows() for side, name in zip("AB", c.names)])
right.plotly_chart(charts.scores(bars, "output", "RMSE", color="model", colors=(charts.MODEL, charts.OTHER),
                                 unit=c.task.shared_unit), key="compare_per_q")
if tree_model:
    with st.expander("Per answer (37)"):
        st.caption(f"Over the {c.basis}")
        st.dataframe(shown(c.per_answer), hide_index=True, key="compare_answers")

st.subheader("Where they disagree most")
both, where = state.split_of_compared(ctx, other, c.disagreements.GalaxyID.to_numpy())
split = state.split_choice(ctx, "compare_split", {"all": len(both), "held out": int(both.sum()),
                                                  "training": int((~both).sum())}, label="Galaxies listed",
                           meaning="Held out: by both models, neither trained on them. Training split: in A's or "
                                "B's training split (one model fitted them)")
kept = state.split_rows(both, split, len(both))
listed, where = c.disagreements.iloc[kept].reset_index(drop=True), where[kept]
which = {"held out": "held out by both models", "training": "in A's or B's training split"}.get(split)
top = (f"galaxies whose outputs differ most (root mean square of A − B over the {len(c.task.columns)} outputs) "
       f"among the {c.basis}")
st.caption((f"Of the {len(c.disagreements)} {top}, the {len(listed)} {which}" if which else f"The {len(listed)} {top}")
           + "; error: the galaxy's RMSE against the labels")
if not len(listed):
    st.info(f"None of the {len(c.disagreements)} listed is {which}: Compare scores, and lists, only the {c.basis}.")
for i, g in listed.iterrows():
    if i % 5 == 0:
        cells = st.columns(5)
    with cells[i % 5]:
        row = ctx.row_of(g.GalaxyID)
        image = state.image_for(ctx, row, size=160) if row is not None else None
        if image is not None:
            st.image(image, width="stretch")
        st.caption(f"**{g.GalaxyID}** · {state.split_badge(where[i])} · differ {g.difference:.3f}{unit}  \n"
                   f"A ({g['error A']:.3f}{unit}): {g['A says']}  \nB ({g['error B']:.3f}{unit}): {g['B says']}"
                   + (f"  \n{g['top answers']}" if tree_model and g["top answers"] else ""))
        if st.button("Open", key=f"compare_open_{g.GalaxyID}", width="stretch",
                     help="The Galaxy page, with both models' bars"):
            state.open_galaxy(g.GalaxyID)
