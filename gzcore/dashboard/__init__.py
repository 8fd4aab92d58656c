"""The Streamlit dashboard's helpers (page registry, choices, state, figures); its pages are in pages/."""
