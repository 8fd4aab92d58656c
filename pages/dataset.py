"""Dataset: answer distributions, correlations between answers, the mean image and the most
confident galaxy for each answer."""
import streamlit as st

from gzcore import catalog, tree
from gzcore.dashboard import access, charts, navigation, state

navigation.through_app()  # app.py's set-up first, even when a fresh server's first request is this page

st.title("Dataset")
ctx = state.context()
state.tree_only(ctx)
sources = ["crowd", "model"] if catalog.has_crowd(ctx.table) else ["model"]
source = st.segmented_control("Answers of", sources, default=sources[0], key="dataset_source") or sources[0]
counts = catalog.question_counts(ctx.table)  # galaxies with crowd labels, per question
partial = source == "crowd" and not all(counts.values())
known = ", ".join(f"Q{n} ({c:,} galaxies)" for n, c in counts.items() if c)
st.caption(f"{len(ctx.table):,} galaxies in `{access.named(ctx.data_dir)}`" +
           (f" · partial labels: crowd answers for {known}" if partial else ""))

left, right = st.columns([3, 1])
with left:
    st.subheader("Answer distributions")
    st.caption(f"Share of galaxies whose top answer (conditional) is each answer, among galaxies whose "
               f"question was reached by at least {catalog.LOW_REACH:.0%} of the {source}")
    st.plotly_chart(charts.shares(catalog.top_answer_shares(ctx.table, source)), key="dataset_shares")
with right:
    st.subheader("Mean image")
    st.image(state.mean_image(ctx), width="stretch",
             caption=f"Mean of the {len(ctx.crops):,} crops the model reads")

st.subheader("Correlations between answers")
st.caption("Pearson correlation of the weighted answers over all galaxies; "
           "blocks along the diagonal are questions")
st.plotly_chart(charts.correlations(catalog.answer_correlations(ctx.table, source)), key="dataset_corr")

st.subheader("The most confident galaxy for each answer")
numbers = [q.number for q in tree.QUESTIONS if source == "model" or counts[q.number]]  # partial labels: some
if st.session_state.get("dataset_q") not in numbers:
    st.session_state.pop("dataset_q", None)
question = st.selectbox("Question", numbers, key="dataset_q",
                        format_func=lambda n: tree.QUESTION_BY_NUMBER[n].title)
best = catalog.most_confident(ctx.table, source)
q = tree.QUESTION_BY_NUMBER[question]
for cell, a in zip(st.columns(max(len(q.answers), 4)), q.answers):
    row = int(best[a.column])
    gid = int(ctx.table.GalaxyID.iat[row])
    with cell:
        image = state.image_for(ctx, row, size=160)
        if image is not None:
            st.image(image, width="stretch")
        st.caption(f"**{a.long}** · {ctx.table[catalog.col(a.column, source)].iat[row]:.2f} weighted")
        if st.button(f"Open {gid}", key=f"dataset_open_{a.column}", width="stretch"):
            state.open_galaxy(gid)
