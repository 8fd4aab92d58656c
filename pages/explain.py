"""Explain: which pixels drove the model's answer (or target, or class)? Captum attributions, two
answers side by side, drawn over the full cutout with the box the model sees."""
import numpy as np
import streamlit as st

from gzcore import catalog, explain, explain_checks, tree
from gzcore.dashboard import charts, navigation, state

navigation.through_app()  # app.py's set-up first, even when a fresh server's first request is this page

METHODS = {"saliency": "Saliency (fast)", "gradcam": "Grad-CAM (fast)",
           "smoothgrad": "SmoothGrad (16 passes)", "integrated_gradients": "Integrated Gradients (32 passes)",
           "occlusion": "Occlusion (slow: ~200 passes)"}
AT_ONCE = ("saliency", "gradcam", explain.DEFAULT_METHOD)  # computed without a button (IG: ~0.3 s at 64 px)
PICTURE_PX = 1024  # larger cutouts are shrunk for the page

ctx = state.context()
shown = state.open_galaxy_view(ctx)  # before the catalogue is ready: this galaxy alone, predicted now
table, row = shown.table, shown.row
gid = int(table.GalaxyID.iat[row])
st.title(f"Why? Galaxy {gid}")
st.caption("Attribution maps of the pixels the model sees (the white box), drawn over the full cutout (the "
           "figure's autoscale button shows all of it). Red (signed methods) or bright: pixels that raise the "
           "answer (or target); blue: pixels that lower it. Maps are scaled per image; colours saturate at "
           "the 99th percentile of |map| (as Smilkov et al. 2017 show theirs).")

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
    names = {a.column: a.long for a in q.answers}
else:  # a model of other targets: one of its outputs (a target, or a class's logit)
    question, conditional = None, False
    names = {c: c for c in ctx.task.columns}
method = top[-3 if tree_model else 0].selectbox("Method", list(METHODS), format_func=METHODS.get,
                                                index=list(METHODS).index(explain.DEFAULT_METHOD),
                                                key="explain_method")
alpha = top[-2 if tree_model else 1].slider("Overlay opacity", 0.0, 1.0, 0.6, 0.05, key="explain_alpha")

# the model's and the crowd's (or the labels') values, of the kind the maps explain
got = catalog.galaxy_values(table, row, list(names), "conditional" if conditional else "weighted")
shares = dict(zip(names, got["model"]))
labelled = not np.isnan(catalog.galaxy_values(table, row, ctx.task.columns)["crowd"]).all()
order = sorted(shares, key=lambda c: -np.nan_to_num(shares[c]))  # the model's top answer first
pixels = state.input_pixels(ctx, shown.path)
picture, box = state.cutout(shown.path, PICTURE_PX), state.input_box(ctx, shown.path)  # the maps' canvas
size = picture.shape[1], picture.shape[0]
cmap = "coolwarm" if method in explain.SIGNED else "inferno"
value = ctx.task.format if ctx.task.kind == "regression" else (lambda c, x: f"{x:.0%}")  # "8.94 dex", "72%"


def beside(c: str) -> str:
    """'crowd 93% · model 72%' (or 'true …' for labels; the model's alone without them)."""
    model = f"model {value(c, shares[c])}"
    crowd = got["crowd"][list(names).index(c)]
    if not labelled:
        return model
    return f"{'crowd' if tree_model else 'true'} {value(c, crowd) if np.isfinite(crowd) else '–'} · {model}"


if tree_model and method not in explain.SIGNED and len(order) > 1:
    st.caption(f"{METHODS[method]} is unsigned: it shows where the output is sensitive, not in which direction. "
               "For a question of two answers, whose conditional probabilities sum to 1, |gradient| is the "
               "same for both, so two answers can get the same map. Choose a signed method (Integrated "
               "Gradients, Occlusion) to see which pixels favour which answer.")
kind = (f"conditional: given Q{question} was asked" if conditional else "weighted: of all volunteers") \
    if tree_model else ""
answers = []
for side, cell in enumerate(st.columns(2)[:min(2, len(order))]):
    with cell:
        answer = st.selectbox(f"{'Answer' if tree_model else 'Output'} {side + 1}", order,
                              index=min(side, len(order) - 1), key=f"explain_a{side}_q{question}",
                              format_func=lambda c: f"{names[c]} (model {value(c, shares[c])})")
        answers.append(answer)
        st.markdown(f"**{beside(answer)}**" + (f" · {kind}" if kind else ""))
        key = state.attribution_key(ctx, gid, question, answer, method, conditional)
        if method not in AT_ONCE and not state.memoised(key) and not st.button(
                f"Compute {METHODS[method]}", key=f"explain_go{side}", type="primary"):
            bare = explain.overlay_full(picture, np.zeros(pixels.shape[:2]), box, 0.0)
            st.plotly_chart(charts.framed(charts.image(bare, 380), box, *size), key=f"explain_input{side}")
            st.caption("The cutout and the model's box; press Compute for the map")
            continue
        result = state.attribution(ctx, gid, pixels, question, answer, method, conditional)
        saturation = explain.display_scale(result.map)  # the 99th percentile of |map|
        overlay = explain.overlay_full(picture, result.map / saturation, box, alpha, cmap)
        figure = charts.attribution(overlay, cmap, result.signed, top=saturation)
        st.plotly_chart(charts.framed(figure, box, *size), key=f"explain_fig{side}", config={"displaylogo": False})
        if tree_model:
            what = f"{'conditional' if conditional else 'weighted'} value {result.target_value:.2f}"
        else:
            what = f"{names[answer]} {value(answer, shares[answer])}" + \
                (" (the map explains its logit)" if ctx.task.kind == "classification" else "")
        st.caption(f"{METHODS[method]} · model {what} · {result.seconds:.1f} s")

st.subheader("Can this map be trusted?")
st.caption(f"The checks of the literature, on the {METHODS[method]} map of {names[answers[0]]}. **Removal**: the "
           "map's pixels go first, against random orders: deletion and insertion (Petsiuk et al. 2018) swap them "
           "for a blurred copy (the answer should fall fast, or rise fast when they come back); ROAD (Rong et al. "
           "2022) imputes them from their neighbours, so that the curve measures information, not a blurred hole "
           "(most relevant first should fall faster than random, least relevant first slower); each by pixel "
           "and by 4×4 patch. **Randomisation** (Adebayo et al. 2018): the weights are re-initialised from the "
           "head down to the input, on a copy; a map that stays alike shows the image, not what the model learned. "
           f"A map passes when it beats random in all eight removal tests and, fully randomised, its rank "
           f"correlation with the original (as drawn: signed for signed methods) is below "
           f"{explain_checks.RANDOMISED_BELOW}.")
check_key = state.attribution_key(ctx, gid, question, answers[0], method, conditional, "attribution check")
if not state.memoised(check_key) and not st.button("Check this map", key="explain_check", type="primary",
                                                  help="One map per layer of the model, each at this method's "
                                                       "cost, then about 800 images through the model"):
    st.stop()
check = state.attribution_check(ctx, gid, pixels, question, answers[0], method, conditional)
(st.success if check.passes else st.warning)(check.verdict())
st.plotly_chart(charts.removal(check.curves, names[answers[0]]), key="explain_removal",
                config={"displaylogo": False})
r = check.randomisation
left, right = st.columns([3, 2])
left.plotly_chart(charts.randomisation(r, explain_checks.RANDOMISED_BELOW), key="explain_randomisation",
                  config={"displayModeBar": False})
shown = np.unique(np.linspace(0, len(r.steps) - 1, 6).round().astype(int))  # at most 6 small maps
right.image([explain.overlay(np.zeros_like(pixels), r.maps[i] / explain.display_scale(r.maps[i]), 1.0, cmap)
             for i in shown], width=96,
            caption=["trained" if r.steps[i] == 0 else f"{r.depth[i]:.0%} random" for i in shown])
right.caption(f"The map as randomisation reaches deeper: {len(r.layers)} layers, from the head (0 %) to the "
              f"input (100 %) · {check.seconds:.1f} s")
