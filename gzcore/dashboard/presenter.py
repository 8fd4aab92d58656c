"""Presenter mode (`?present=1` on any page, or the sidebar's button): no sidebar, no Streamlit
toolbar or "Deploy" menu, type sized to the screen so the back of a room reads it. The CSS lives
here, once; app.py calls `apply()` before the page runs, and `phone()` gives the vote page the same
bare screen at a phone's size. Light (no torch): app.py imports it."""
from __future__ import annotations

import streamlit as st

KEY = "_present"  # session state: presenter mode on
EXIT = "presenter_exit"  # the corner button's key (its CSS class is st-key-presenter_exit)

# Streamlit's chrome: the sidebar and its expand arrow, the header with the toolbar, "Deploy" and the
# main menu, the coloured decoration line. By test id, as Streamlit's own tests find them.
CHROME = ('[data-testid="stSidebar"]', '[data-testid="stSidebarCollapsedControl"]',
          '[data-testid="stExpandSidebarButton"]', '[data-testid="stHeader"]', '[data-testid="stToolbar"]',
          '[data-testid="stDecoration"]', '[data-testid="stMainMenu"]', '[data-testid="stAppDeployButton"]',
          ".stAppDeployButton")
BARE = ",".join(CHROME) + "{display:none !important}"
# rem scales every Streamlit size with the root's font: ~19 px on a 1280-px projector, ~27 px at 1920
PRESENT_CSS = f"""<style>{BARE}
html{{font-size:clamp(18px,calc(1.2vw + 4px),30px)}}
[data-testid="stMainBlockContainer"]{{padding:1.2rem 2rem 1rem;max-width:100%}}
h1{{font-size:2.1rem !important;padding:0 0 .3rem !important}}
[data-testid="stImage"] img{{width:min(100%,calc(100vh - 12rem)) !important;height:auto;margin:auto}}
.st-key-{EXIT}{{position:fixed;top:.3rem;right:.5rem;z-index:999991;width:auto !important;opacity:.3}}
.st-key-{EXIT}:hover{{opacity:1}}
</style>"""
PHONE_CSS = f"""<style>{BARE}
html{{font-size:17px}}
[data-testid="stMainBlockContainer"]{{padding:.6rem .8rem 2rem;max-width:34rem}}
h1{{font-size:1.5rem !important;padding:0 !important}}
.stButton button{{min-height:3.2rem;font-size:1.1rem}}
</style>"""


def _from_url(value) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def active() -> bool:
    """Whether this session shows the dashboard in presenter mode."""
    return bool(st.session_state.get(KEY))


def _set(on: bool) -> None:
    st.session_state[KEY] = on


def apply() -> None:
    """app.py, every run: read `?present=` once a session, keep the URL in step (a shared link keeps
    the mode), then either hide the chrome (with an exit button in the top-right corner) or offer
    the mode in the sidebar."""
    if KEY not in st.session_state:
        st.session_state[KEY] = _from_url(st.query_params.get("present", ""))
    if active():
        st.query_params["present"] = "1"
        st.html(PRESENT_CSS)
        st.button("Exit presenter mode", key=EXIT, icon=":material/close_fullscreen:", on_click=_set, args=(False,))
    else:
        st.query_params.pop("present", None)
        st.sidebar.button("Presenter mode", key="presenter_enter", icon=":material/present_to_all:",
                          help="A projector's view: no sidebar or menus, large type (?present=1)",
                          on_click=_set, args=(True,), width="stretch")


def phone() -> None:
    """The vote page: a phone's bare screen (no sidebar, no toolbar), large buttons."""
    st.html(PHONE_CSS)
