"""The Atlas's wall view, for a planetarium's or a museum's screen: the map drawn with real galaxies,
filling the screen; its regions named from the crowd's answers (atlas.regions); a click zooms from
the map to a region's galaxies, then to one galaxy (and on to the Galaxy page); a slow tour shows
the regions one by one. Opened from the Atlas page, or by URL: /atlas?wall=1 (the UMAP map once on
disk, else PCA; wall=pca or wall=umap to choose), with &tour=1 the tour, with &present=1 no sidebar
or menus."""
from __future__ import annotations

import base64
import io
import time
from functools import partial

import numpy as np
import streamlit as st
from PIL import Image

from gzcore import atlas, catalog, computed, data, tree
from gzcore.dashboard import charts, presenter, state

KEY = "_atlas_wall"    # session state: the open wall's map method ("pca" or "umap"); absent or None: closed
ZOOM = "_atlas_zoom"   # session state: (region, row) zoomed into; None stands for the level above
VIEWS = "_atlas_views"  # session state: views shown so far; each mosaic's key ends with it (a fresh chart, unclicked)
TOUR = "atlas_tour"    # the tour's toggle
ON = ("1", "true", "yes", "on")
GRID = (16, 9)         # tiles across and down the whole map: a 16:9 screen's shape, ~110 px a tile at 1080p
REGION_GRID = (10, 6)  # a region's finer mosaic: fewer, larger tiles over a smaller patch of the map
PER_TILE = 12          # galaxies a cell of the grid holds on average, at least: fewer galaxies, fewer cells
TILE_PX = 160          # a tile's pixels: crisp on a 1080p wall
LABEL_PX = 18          # the regions' names in presenter mode (the map full width); smaller beside the sidebar
TOUR_SECONDS = 20      # each region's time on screen in the tour
TOUR_GALAXIES = 4      # the clearest galaxies of a region the tour shows
TOUR_PX = 400          # their pixels: a close-up drawn up to ~400 px a side on a 1080p wall


def _url_method(value) -> str | None:
    """?wall=: 'pca' or 'umap' as named, 'best' for one of ON; None (the wall stays closed) for anything
    else, since a URL is untrusted input."""
    text = str(value).strip().lower()
    return text if text in ("pca", "umap") else "best" if text in ON else None


def opened(ctx: state.Context) -> str | None:
    """The open wall's map method, reading ?wall= and ?tour= once a session: UMAP when asked for (or
    any yes) and on disk, its regions the clearer; else PCA. Keeps the URL in step, so that a shared
    link opens the same view."""
    if KEY not in st.session_state:
        asked = _url_method(st.query_params.get("wall", ""))
        st.session_state[KEY] = asked and ("umap" if asked != "pca" and state.atlas_ready(ctx, "umap") else "pca")
        st.session_state[TOUR] = str(st.query_params.get("tour", "")).strip().lower() in ON
    method = st.session_state[KEY]
    if method:
        st.query_params["wall"] = method
        if st.session_state.get(TOUR):
            st.query_params["tour"] = "1"
        else:
            st.query_params.pop("tour", None)
    else:
        for key in ("wall", "tour"):
            st.query_params.pop(key, None)
    return method


def open_wall(method: str) -> None:
    st.session_state[KEY] = method
    _zoom(None, None)


def close_wall() -> None:
    st.session_state[KEY], st.session_state[TOUR] = None, False


def _zoom(region: int | None, row: int | None) -> None:
    st.session_state[ZOOM] = (region, row)
    st.session_state[VIEWS] = st.session_state.get(VIEWS, 0) + 1


def _clicked(key: str, zooms: list[tuple]) -> None:
    """A click on a tile: zoom to what that tile opens (`zooms`, by tile)."""
    points = st.session_state[key].selection.points
    if points:
        _zoom(*zooms[points[0]["point_index"]])


@st.cache_data(show_spinner=False, max_entries=400)
def _close_up(path: str, key: str, size: int) -> np.ndarray | None:
    try:
        return atlas.close_up(path, size)
    except data.DataError:
        return None  # an unreadable image: its tile stays empty


@st.cache_data(show_spinner=False, max_entries=4000)
def _uri(path: str, key: str, size: int) -> str | None:
    pixels = _close_up(path, key, size)
    if pixels is None:
        return None
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode()


def tile(ctx: state.Context, row: int) -> str | None:
    """A galaxy's close-up (atlas.close_up), TILE_PX a side, as a JPEG data URI, once per server; None
    when its image cannot be read."""
    path = ctx.galaxies.paths[row]
    return _uri(str(path), computed.file_key(path), TILE_PX)


def close_up(ctx: state.Context, row: int, size: int) -> np.ndarray | None:
    """A galaxy's close-up, `size` a side, for st.image; None when its image cannot be read."""
    path = ctx.galaxies.paths[row]
    return _close_up(str(path), computed.file_key(path), size)


def grid(n: int, shape: tuple[int, int], per_tile: int = PER_TILE) -> tuple[int, int]:
    """`shape`, shrunk alike on both sides (to 2 x 1 at least) until its cells hold `per_tile` of `n`
    galaxies on average."""
    scale = min(1.0, np.sqrt(n / per_tile / np.prod(shape)))
    return max(2, round(shape[0] * scale)), max(1, round(shape[1] * scale))


def _css() -> str:
    """Full screen: the view below a one-line bar fills what the browser shows (rem: presenter mode
    scales it with the screen)."""
    top = "0.6rem" if presenter.active() else "4rem"  # under Streamlit's header, when shown
    fill = f"calc(100vh - {top} - 4.4rem)"
    return f"""<style>
[data-testid="stMainBlockContainer"]{{padding-top:{top} !important;padding-bottom:0 !important;max-width:100%}}
div:has(> .st-key-atlas_wall_view),.st-key-atlas_wall_view{{height:{fill} !important;flex:none !important}}
.st-key-atlas_wall_view [data-testid="stImage"] img{{max-height:calc(({fill} - 7rem) / 2);width:100% !important;
 object-fit:contain}}
.st-key-atlas_wall_view h2{{font-size:2rem;padding:0}}
.st-key-atlas_wall_one [data-testid="stImage"] img{{height:calc({fill} - 1rem) !important;width:auto !important}}
.st-key-atlas_wall_bar{{padding-right:{'11rem' if presenter.active() else '0'}}}
.st-key-atlas_wall_bar [data-testid="stMarkdownContainer"] p{{font-size:.85rem;line-height:1.3;margin:0}}
</style>"""


def show(ctx: state.Context, xy: np.ndarray, method: str) -> None:
    """The wall: a bar (where one is, the tour, the ways back and out) above the view that fills the screen."""
    st.html(_css())
    tiles = atlas.mosaic(xy, grid(len(xy), GRID))
    found = _regions(ctx, tiles)
    region, row = st.session_state.get(ZOOM) or (None, None)
    if (region is not None and region >= len(found)) or (row is not None and row >= len(xy)):  # another map's
        region, row = None, None
    touring = bool(found) and st.session_state.get(TOUR)
    with st.container(key="atlas_wall_bar", horizontal=True, vertical_alignment="center", wrap=False):
        st.markdown(_where(ctx, len(xy), method, found, region, row, touring), width="stretch")
        if row is not None and region is not None and not touring:
            st.button(f"Back to {found[region].label}", key="atlas_wall_region_back", icon=":material/zoom_out:",
                      on_click=_zoom, args=(region, None))
        if (row is not None or region is not None) and not touring:
            st.button("Whole map", key="atlas_wall_back", icon=":material/zoom_out_map:", on_click=_zoom,
                      args=(None, None))
        if found:
            st.toggle("Tour", key=TOUR, help=f"Show the regions one by one, {TOUR_SECONDS} s each (?tour=1)")
        st.button("Leave the wall", key="atlas_wall_leave", icon=":material/close_fullscreen:", on_click=close_wall)
    if touring:
        _tour(ctx, tiles, found)
    elif row is not None:
        _galaxy(ctx, row)
    elif region is not None:
        _region(ctx, xy, found[region], region)
    else:
        _map(ctx, xy, tiles, found)


def _where(ctx: state.Context, n: int, method: str, found: list[atlas.Region], region: int | None,
           row: int | None, touring: bool) -> str:
    """The bar's words: what the view shows, and what a click does."""
    if touring:
        return f"**A tour of the map's {_regions_word(found)}**, {TOUR_SECONDS} s each"
    if row is not None:
        return f"**Galaxy {int(ctx.table.GalaxyID.iat[row])}**" + \
            (f", in *{found[region].label}*" if region is not None else "")
    if region is not None:
        return f"**{found[region].label}**: {found[region].basis} · click one to see it large"
    return (f"**{n:,} galaxies**, placed by how alike the model sees them ({method.upper()} map) · "
            + (f"{_regions_word(found)} named from {_whose(found)} · click one to zoom in" if found else
               "click one to see it large (regions are named for Galaxy Zoo tree models only)"))


def _crowd(table, rows=None) -> np.ndarray | None:
    """The crowd's weighted answers (catalog.weighted), None when the table has none for some question."""
    full = all(catalog.col(c, "crowd") in table for c in tree.COLUMNS)
    return catalog.weighted(table, "crowd", rows) if full else None


def _regions(ctx: state.Context, tiles: atlas.Mosaic) -> list[atlas.Region]:
    """atlas.regions from the crowd's answers (the model's without them); none for other targets."""
    if ctx.task.kind != "tree":
        return []
    return atlas.regions(tiles, _crowd(ctx.table), catalog.weighted(ctx.table))


def _regions_word(found: list[atlas.Region]) -> str:
    return f"{len(found)} region{'' if len(found) == 1 else 's'}"


def _whose(found: list[atlas.Region]) -> str:
    sources = {r.source for r in found}
    return ("the crowd's answers" if sources == {"crowd"} else "the model's answers (no crowd answers)"
            if sources == {"model"} else "the crowd's answers (the model's where the crowd gave none)")


def _labels(tiles: atlas.Mosaic, found: list[atlas.Region]) -> list[tuple]:
    """Each region's name, and the galaxies it counts, apart from the others' (atlas.label_tiles)."""
    return [(*tiles.centres[t], f"<b>{r.label}</b><br>{r.counted:,} galaxies · {r.source}",
             charts.REGION_COLOURS[i % len(charts.REGION_COLOURS)])
            for i, (r, t) in enumerate(zip(found, atlas.label_tiles(tiles, found)))]


def _mosaic_chart(ctx, tiles: atlas.Mosaic, rows: np.ndarray, hover: list[str], key: str, zooms: list[tuple],
                  **drawn) -> None:
    """The mosaic of `rows` (the map's rows of the tiles' galaxies), filling the view; a click zooms to
    `zooms[tile]`. Its key ends with the number of views shown: a chart met again starts unclicked."""
    sources = [tile(ctx, int(r)) for r in rows]
    figure = charts.atlas_mosaic(tiles.centres, tiles.cell, sources, hover, **drawn)
    key = f"{key}_{st.session_state.get(VIEWS, 0)}"
    with st.container(key="atlas_wall_view"):
        st.plotly_chart(figure, height="stretch", key=key, on_select=partial(_clicked, key, zooms),
                        selection_mode="points", config={"displayModeBar": False})


def _map(ctx: state.Context, xy: np.ndarray, tiles: atlas.Mosaic, found: list[atlas.Region]) -> None:
    ids = ctx.table.GalaxyID.to_numpy()
    of = atlas.region_of_tiles(found, len(tiles.rows))
    hover = [f"<b>{found[g].label}</b><br>galaxy {ids[r]}<br>click to zoom in" if g >= 0 else f"galaxy {ids[r]}"
             for r, g in zip(tiles.rows, of)]
    zooms = [(int(g), None) if g >= 0 else (None, int(r)) for r, g in zip(tiles.rows, of)]
    _mosaic_chart(ctx, tiles, tiles.rows, hover, "atlas_wall_map", zooms, dust=xy, labels=_labels(tiles, found),
                  borders=atlas.borders(tiles, of), label_px=LABEL_PX if presenter.active() else LABEL_PX - 4)


def _region(ctx: state.Context, xy: np.ndarray, region: atlas.Region, index: int) -> None:
    """The region's finer mosaic: its galaxies, larger."""
    ids = ctx.table.GalaxyID.to_numpy()
    finer = atlas.mosaic(xy[region.rows], grid(len(region.rows), REGION_GRID, 1), min_galaxies=1)
    rows = region.rows[finer.rows]
    hover = [f"<b>{region.label}</b><br>galaxy {ids[r]}<br>click to see it large" for r in rows]
    _mosaic_chart(ctx, finer, rows, hover, f"atlas_wall_region_{index}", [(index, int(r)) for r in rows],
                  dust=xy[region.rows])


def _galaxy(ctx: state.Context, row: int) -> None:
    """One galaxy large (its whole image), what the crowd and the model saw, and the way to the Galaxy page."""
    table, galaxy_id = ctx.table, int(ctx.table.GalaxyID.iat[row])
    with st.container(key="atlas_wall_one"):
        left, right = st.columns([3, 2], gap="large")
    image = state.image_for(ctx, row)
    if image is not None:
        left.image(image, width="stretch")
    with right:
        st.markdown(f"## Galaxy {galaxy_id}")
        if ctx.task.kind == "tree":
            crowd, model = _crowd(table, [row]), catalog.weighted(table, rows=[row])
            if crowd is not None and not np.isnan(crowd).any():
                st.markdown(f"**What the crowd saw:** {tree.summary(crowd)}")
            st.markdown(f"**What the model saw:** {tree.summary(model)}")
        else:
            st.markdown(" · ".join(catalog.summaries(table, ctx.task, rows=[row])))
        if st.button(f"Open galaxy {galaxy_id}", key="atlas_wall_open", type="primary", icon=":material/cyclone:"):
            state.open_galaxy(galaxy_id)


def _tour(ctx: state.Context, tiles: atlas.Mosaic, found: list[atlas.Region]) -> None:
    """Every region in turn, TOUR_SECONDS each (the same region on every screen at the same time): the
    map with it lit, its name, and a few of its clearest galaxies, large."""
    of = atlas.region_of_tiles(found, len(tiles.rows))
    ids = ctx.table.GalaxyID.to_numpy()

    @st.fragment(run_every=TOUR_SECONDS)
    def tour_stop() -> None:
        index = int(time.time() // TOUR_SECONDS) % len(found)
        region = found[index]
        with st.container(key="atlas_wall_view"):
            left, right = st.columns([3, 2], gap="large")
        figure = charts.atlas_mosaic(tiles.centres, tiles.cell, [tile(ctx, int(r)) for r in tiles.rows],
                                     [""] * len(tiles.rows), labels=_labels(tiles, found)[index:index + 1],
                                     borders=atlas.borders(tiles, of), lit=of == index)
        left.plotly_chart(figure, height="stretch", key="atlas_wall_tour",
                          config={"displayModeBar": False, "staticPlot": True})
        with right:
            st.markdown(f"## {region.label}")
            st.caption(f"Named from {region.basis} · region {index + 1} of {len(found)}, the next in "
                       f"{TOUR_SECONDS} s · its clearest galaxies:")
            clearest = region.clearest[:TOUR_GALAXIES]
            for start in range(0, len(clearest), 2):
                for cell, r in zip(st.columns(2), clearest[start:start + 2]):
                    image = close_up(ctx, int(r), TOUR_PX)
                    if image is not None:
                        cell.image(image, width="stretch", alt=f"galaxy {ids[r]}")
    tour_stop()
