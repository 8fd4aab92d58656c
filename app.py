"""The Galaxy Zoo 2 dashboard: `streamlit run app.py`. The pages are in pages/ (listed once in
gzcore.dashboard.navigation), their helpers in gzcore.dashboard, the science in gzcore."""
import streamlit as st

from gzcore.dashboard import access, choices, heap, navigation, presenter

heap.settle()  # what earlier runs imported and loaded is out of the collection after each run
st.set_page_config(page_title="Galaxy Zoo 2 morphology", page_icon=":material/cyclone:", layout="wide")
if access.public():
    st.set_option("client.showErrorDetails", "none")  # no traceback reaches a visitor (the log has it)
    st.set_option("client.toolbarMode", "viewer")      # no developer menu
choices.sync_url()
page = navigation.menu()
presenter.apply()  # ?present=1: no chrome, large type (the sidebar offers it otherwise)
with st.sidebar:
    st.caption(f"Data: `{choices.data_dir().name}`  \nModel: `{choices.checkpoint_path().name}`" +
               (f"  \nBrowsing: `{choices.predictions_path().name}`" if choices.predictions_path() else ""))
page.run()
