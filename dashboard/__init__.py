"""The Streamlit dashboard's pages and its one stateful module (state.py); run `streamlit run app.py`."""
