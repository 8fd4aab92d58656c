"""Every page of the dashboard, once: its script in pages/, title, icon, section and URL path.
app.py builds the sidebar from SECTIONS; pages link with `st.page_link(BROWSE.script)` and
`st.switch_page(GALAXY.script)`; the tests switch pages the same way. Torch-free: app.py imports it.

A page's URL path is its file name (pages/browse.py is /browse). Streamlit names pages by file name
until st.navigation has run (AppTest before its first run, and the pages/ folder mode below), so the
two must agree for a page to be found by either name."""
from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
from streamlit.navigation.page import StreamlitPage

from gzcore.dashboard import choices

FRAMED = "_app_framed"  # session state: app.py has run in this session (see through_app)


@dataclass(frozen=True)
class Page:
    name: str     # pages/<name>.py at /<name>
    title: str
    icon: str     # a Material icon, ":material/<name>:"
    section: str  # the sidebar heading it is listed under ("" for none)

    @property
    def script(self) -> str:
        """Relative to app.py's folder, as st.Page, st.page_link, st.switch_page and AppTest take it."""
        return f"pages/{self.name}.py"

    @property
    def url_path(self) -> str:
        return "" if self is HOME else self.name


HOME = Page("home", "Home", ":material/home:", "")
BROWSE = Page("browse", "Browse", ":material/grid_view:", "Explore")
GALAXY = Page("galaxy", "Galaxy", ":material/cyclone:", "Explore")
EXPLAIN = Page("explain", "Explain", ":material/visibility:", "Explore")
ATLAS = Page("atlas", "Atlas", ":material/scatter_plot:", "Explore")
ODDBALLS = Page("oddballs", "Oddballs", ":material/travel_explore:", "Explore")
YOUR_GALAXY = Page("your_galaxy", "Your galaxy", ":material/upload:", "Explore")
EVALUATE = Page("evaluate", "Evaluate", ":material/query_stats:", "Model")
DATASET = Page("dataset", "Dataset", ":material/bar_chart:", "Model")
COMPARE = Page("compare", "Compare models", ":material/compare_arrows:", "Model")
TRAIN = Page("train", "Train", ":material/model_training:", "Model")
PLAY = Page("play", "Play", ":material/sports_esports:", "Outreach")
VOTE = Page("vote", "Vote", ":material/how_to_vote:", "Outreach")  # a phone in a Play room (?room=NAME)
KIOSK = Page("kiosk", "Kiosk", ":material/slideshow:", "Outreach")   # a galaxy of the minute (?every=SECONDS)
PAGES = (HOME, BROWSE, GALAXY, EXPLAIN, ATLAS, ODDBALLS, YOUR_GALAXY, EVALUATE, COMPARE, DATASET, TRAIN, PLAY,
         VOTE, KIOSK)  # in sidebar order
SECTIONS = tuple(dict.fromkeys(p.section for p in PAGES))


def _navigation(position: str) -> StreamlitPage:
    return st.navigation({section: [st.Page(p.script, title=p.title, icon=p.icon, url_path=p.name,
                                            default=p is HOME) for p in PAGES if p.section == section]
                          for section in SECTIONS}, position=position,
                         expanded=True)  # every page listed (Streamlit folds a list of more than 12 into "View more")


def menu() -> StreamlitPage:
    """app.py's st.navigation: every page in the sidebar, grouped by section; returns the page to run."""
    st.session_state[FRAMED] = True
    return _navigation("sidebar")


def through_app() -> None:
    """Make sure app.py's set-up (page config, URL sync, sidebar) ran before this page, and show the
    choices refused since the last run (choices.refusals): every page calls this first.

    While no session has called st.navigation, Streamlit treats a pages/ folder beside app.py as
    its old multipage mode: a fresh server's first request to /browse?galaxy=… runs pages/browse.py
    alone, without app.py. Calling st.navigation ends that mode for every session, and st.rerun
    keeps the page and its query string, so the rerun goes through app.py."""
    if not st.session_state.get(FRAMED):
        _navigation("hidden")
        st.rerun()
    for refusal in choices.refusals():  # a choice from the URL or a widget this server does not open
        st.error(refusal, icon=":material/block:")
