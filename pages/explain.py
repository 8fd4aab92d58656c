"""Explain: which pixels drove the model's answer (or target, or class)? Captum attributions, two
answers side by side."""
import numpy as np
import streamlit as st

from gzcore import catalog, explain, tree
from gzcore.dashboard import charts, navigation, state

navigation.through_app()  # app.py's set-up first, even when a fresh server's first request is this page

METHODS = {"saliency": "Saliency (fast)", "gradcam": "Grad-CAM (fast)",
           "smoothgrad": "SmoothGrad (16 passes)", "integrated_gradients": "Integrated Gradients (32 passes)",
           "occlusion": "Occlusion (slow: ~200 passes)"}
FAST = ("saliency", "gradcam")

ctx = state.context()
shown = state.open_galaxy_view(ctx)  # before the catalogue is ready: this galaxy alone, predicted now
table, row = shown.table, shown.row
gid = int(table.GalaxyID.iat[row])
st.title(f"Why? Galaxy {gid}")
st.caption("Attribution maps over the pixels the model sees (its crop of the image). Bright or red: pixels "
           "that raise the answer (or target); blue (signed methods): pixels that lower it. Maps are scaled "
           "per image.")

tree_model = ctx.task.kind == "tree"
if tree_model and st.session_state.get("_explain_galaxy") != gid:  # a galaxy newly opened here
    st.session_state["_explain_galaxy"] = gid
    disputed = catalog.disputed(table, row)
    if disputed is not None:  # open on the question in dispute: the crowd's answer, then the model's
        number, crowd_answer, model_answer = disputed
        st.session_state.explain_q = number
        st.session_state[f"explain_a0_q{number}"] = crowd_answer
        if model_answer != crowd_answer:
            st.session_state[f"explain_a1_q{number}"] = model_answer
top = st.columns([3, 2, 2, 2] if tree_model else [2, 2], vertical_alignment="bottom")
if tree_model:
    question = top[0].selectbox("Question", [q.number for q in tree.QUESTIONS], key="explain_q",
                                format_func=lambda n: tree.QUESTION_BY_NUMBER[n].title)
    conditional = top[3].toggle("Conditional answer", value=True, key="explain_conditional",
                                help="Explain P(answer | question asked) rather than the weighted output, "
                                     "which also carries the evidence for every question on the way")
    q = tree.QUESTION_BY_NUMBER[question]
    shares = {a.column: float(table[catalog.col(a.column, "model", "conditional")].iat[row])
              for a in q.answers}
    names = {a.column: a.long for a in q.answers}
else:  # a model of other targets: one of its outputs (a target, or a class's logit)
    question, conditional = None, False
    shares = {c: float(table[catalog.col(c)].iat[row]) for c in ctx.task.columns}
    names = {c: c for c in ctx.task.columns}
method = top[-3 if tree_model else 0].selectbox("Method", list(METHODS), format_func=METHODS.get,
                                                key="explain_method")
alpha = top[-2 if tree_model else 1].slider("Overlay opacity", 0.0, 1.0, 0.6, 0.05, key="explain_alpha")

order = sorted(shares, key=lambda c: -np.nan_to_num(shares[c]))  # the model's top answer first
pixels = state.input_pixels(ctx, shown.path)
cmap = "coolwarm" if method in explain.SIGNED else "inferno"
value = "{:.0%}" if ctx.task.kind != "regression" else "{:.3g}"

answers = []
for side, cell in enumerate(st.columns(2)[:min(2, len(order))]):
    with cell:
        answer = st.selectbox(f"{'Answer' if tree_model else 'Output'} {side + 1}", order,
                              index=min(side, len(order) - 1), key=f"explain_a{side}_q{question}",
                              format_func=lambda c: f"{names[c]} (model {value.format(shares[c])})")
        answers.append(answer)
        key = state.attribution_key(ctx, gid, question, answer, method, conditional)
        if method not in FAST and not state.memoised(key) and not st.button(
                f"Compute {METHODS[method]}", key=f"explain_go{side}", type="primary"):
            st.plotly_chart(charts.image(pixels, 380), key=f"explain_input{side}")
            st.caption("The model's input; press Compute for the map")
            continue
        result = state.attribution(ctx, gid, pixels, question, answer, method, conditional)
        overlay = explain.overlay(pixels, result.map, alpha, cmap)
        st.plotly_chart(charts.attribution(overlay, cmap, result.signed), key=f"explain_fig{side}",
                        config={"displaylogo": False})
        if tree_model:
            what = f"{'conditional' if conditional else 'weighted'} value {result.target_value:.2f}"
        else:
            what = f"{names[answer]} {value.format(shares[answer])}" + \
                (" (the map explains its logit)" if ctx.task.kind == "classification" else "")
        st.caption(f"{METHODS[method]} · model {what} · {result.seconds:.1f} s")

st.subheader("Can this map be trusted?")
st.caption(f"Two checks of the {METHODS[method]} map of {names[answers[0]]}. Randomisation (Adebayo et al. "
           "2018): the model's weights are re-initialised layer by layer from the head down, on a copy; a map "
           "that stays alike (rank correlation of |map| near 1) shows the image, not what the model learned. "
           "Deletion: the most-attributed pixels are replaced by the image's mean first; a map that carries "
           "information lowers the answer faster than random pixels do.")
check_key = state.attribution_key(ctx, gid, question, answers[0], method, conditional, "attribution check")
if not state.memoised(check_key) and not st.button("Check this map", key="explain_check", type="primary",
                                                  help="One map per layer of the model, each at this method's cost"):
    st.stop()
check = state.attribution_check(ctx, gid, pixels, question, answers[0], method, conditional)
st.markdown(f"**{check.verdict()}**")
r, d = check.randomisation, check.deletion
left, right = st.columns(2)
left.plotly_chart(charts.randomisation(r.steps, r.layers, r.spearman), key="explain_randomisation")
right.plotly_chart(charts.deletion(d.fractions, d.attributed, d.random, names[answers[0]]), key="explain_deletion")
shown = np.unique(np.linspace(0, len(r.steps) - 1, 8).round().astype(int))  # at most 8 small maps
left.image([explain.overlay(np.zeros_like(pixels), r.maps[i], 1.0, cmap) for i in shown], width=72,
           caption=["original" if r.steps[i] == 0 else f"to {r.layers[r.steps[i] - 1]}" for i in shown])
right.caption(f"{len(r.layers)} layers randomised, {len(r.steps)} maps · {check.seconds:.1f} s")
