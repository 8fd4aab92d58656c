"""The Galaxy Zoo 2 dashboard: `streamlit run app.py`. Pages live in dashboard/, logic in gzcore."""
import streamlit as st

from dashboard import choices

st.set_page_config(page_title="Galaxy Zoo 2 morphology", page_icon=":material/cyclone:", layout="wide")
choices.sync_url()
page = st.navigation({
    "": [st.Page("dashboard/home.py", title="Home", icon=":material/home:", default=True)],
    "Explore": [st.Page("dashboard/browse.py", title="Browse", icon=":material/grid_view:"),
                st.Page("dashboard/galaxy.py", title="Galaxy", icon=":material/cyclone:"),
                st.Page("dashboard/explain.py", title="Explain", icon=":material/visibility:")],
    "Model": [st.Page("dashboard/evaluate.py", title="Evaluate", icon=":material/query_stats:"),
              st.Page("dashboard/dataset.py", title="Dataset", icon=":material/bar_chart:"),
              st.Page("dashboard/train.py", title="Train", icon=":material/model_training:")],
    "Outreach": [st.Page("dashboard/play.py", title="Play", icon=":material/sports_esports:")],
})
with st.sidebar:
    st.caption(f"Data: `{choices.data_dir().name}`  \nModel: `{choices.checkpoint_path().name}`")
page.run()
