"""Kiosk: a "galaxy of the minute" for a museum screen. It advances by itself (`?every=SECONDS`,
60 by default, 10 to 600): the image, the questions along the crowd's path, and the crowd's and the
model's answers as vote bars. Every kiosk on a server shows the same galaxy at the same minute.
No sidebar or menus; the faint corner link leaves."""
import re
import time

import numpy as np
import streamlit as st

from gzcore import catalog, tree
from gzcore.dashboard import navigation, outreach, presenter, state
from gzcore.dashboard.charts import CROWD, MODEL

navigation.through_app()  # app.py's set-up first, even when a fresh server's first request is this page
if not presenter.active():
    st.html(presenter.PRESENT_CSS)
    with st.container(key=presenter.EXIT):
        st.page_link(navigation.HOME.script, label="Leave the kiosk", icon=":material/close_fullscreen:")
every = str(st.query_params.get("every", ""))
every = int(np.clip(int(every), 10, 600)) if re.fullmatch(r"[0-9]{1,5}", every) else 60  # ASCII digits only
st.title("Galaxy of the minute" if every == 60 else "Galaxy of the moment")
ctx = state.context()
state.tree_only(ctx)
state.labelled(ctx)
order = np.random.default_rng(0).permutation(len(ctx.table))  # the same sequence on every kiosk


@st.fragment(run_every=every)
def slide() -> None:
    row = int(order[int(time.time() // every) % len(order)])
    crowd_w, model_w = (catalog.weighted(ctx.table, s, rows=[row]) for s in ("crowd", "model"))
    crowd, model = outreach.shares(crowd_w), outreach.shares(model_w)
    left, right = st.columns([11, 9], gap="large")
    image = state.image_for(ctx, row)
    if image is not None:
        left.image(image, width="stretch")
    left.caption(f"Galaxy {int(ctx.table.GalaxyID.iat[row])} · the next one in {every} s")
    with right:
        st.markdown(f"**What the crowd saw:** {tree.summary(crowd_w)}")
        path = [s.question for s in tree.most_likely_path(crowd_w)][:2]  # two questions fit a 720-px screen
        st.html(outreach.vote_bars([{"question": n, "The crowd": crowd[n], "The model": model[n]} for n in path],
                                   {"The crowd": CROWD, "The model": MODEL}))


slide()
