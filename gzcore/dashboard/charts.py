"""Plotly figures for the pages: arrays and frames in, figures out (no Streamlit here). The images
(`image`, `attribution`) are plain dicts of the figure, which st.plotly_chart takes as it is."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from gzcore import explain, targets
from gzcore.dashboard import pictures

CROWD, MODEL, OTHER = "#E8853D", "#3D7EC8", "#4CA36B"  # OTHER: a second model (Compare)
GREY_CROWD, GREY_MODEL, GREY_OTHER = "#D9C3B3", "#B3C2D6", "#BCD6C5"
MARGIN = dict(l=0, r=0, t=30, b=0)


def image(pixels: np.ndarray, height: int = 420) -> go.Figure | dict:
    """An RGB image with plotly's zoom and pan, no axes: px.imshow's figure, as a plain dict whose
    PNG is encoded once per server (pictures.png_uri; px.imshow and the encoding cost ~15x more
    than the rest of st.plotly_chart). Other arrays (one channel, floats) through px.imshow."""
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        fig = px.imshow(pixels)
        fig.update_xaxes(visible=False).update_yaxes(visible=False)
        return fig.update_layout(height=height, margin=dict(l=0, r=0, t=0, b=0), dragmode="zoom")
    return {"data": [{"type": "image", "name": "0", "source": pictures.png_uri(pixels), "xaxis": "x", "yaxis": "y",
                      "hovertemplate": "x: %{x}<br>y: %{y}<br>color: [%{z[0]}, %{z[1]}, %{z[2]}]<extra></extra>"}],
            "layout": {"xaxis": {"anchor": "y", "domain": [0.0, 1.0], "visible": False},
                       "yaxis": {"anchor": "x", "domain": [0.0, 1.0], "visible": False},
                       "margin": {"l": 0, "r": 0, "t": 0, "b": 0}, "height": height, "dragmode": "zoom"}}


def answers(names: list[str], crowd: np.ndarray | None, model: np.ndarray, greyed: bool,
            spread: np.ndarray | None = None, other: np.ndarray | None = None,
            other_name: str = "other model") -> go.Figure:
    """Crowd (or true) and model fractions of one question's answers (or a classifier's class
    probabilities), side by side on a fixed [0, 1] axis; `spread` draws ± error bars on the model's;
    `other` adds a second model's bars (named `other_name`) below the model's."""
    bars = {"crowd": (crowd, GREY_CROWD if greyed else CROWD, None),
            "model": (model, GREY_MODEL if greyed else MODEL, spread)}
    if other is not None:
        bars[other_name] = (other, GREY_OTHER if greyed else OTHER, None)
    fig = go.Figure()
    for name, (values, colour, error) in bars.items():
        if values is not None and not np.isnan(values).all():  # all NaN: no volunteer reached it
            bar = dict(texttemplate="%{x:.2f}", textposition="outside")
            if error is not None:  # the value at the bar's base: the whisker takes its end
                bar = dict(error_x=dict(type="data", array=np.nan_to_num(error), color="#333333",
                                        thickness=1.2, width=3),
                           customdata=error, texttemplate="%{x:.2f} ± %{customdata:.2f}",
                           textposition="auto", insidetextanchor="start",
                           insidetextfont_color="#333333" if greyed else "white",  # legible on grey too
                           hovertemplate="%{y}: %{x:.3f} ± %{customdata:.3f}<extra>model</extra>")
            fig.add_bar(y=names, x=values, name=name, orientation="h", marker_color=colour, **bar)
    fig.update_xaxes(range=[0, 1.12], tickvals=[0, 0.25, 0.5, 0.75, 1], fixedrange=True)  # room for labels
    fig.update_yaxes(autorange="reversed", fixedrange=True, type="category")  # Q11's "1", "2" are names
    return fig.update_layout(barmode="group", height=60 + (38 if other is None else 54) * len(names),
                             showlegend=False, bargap=0.25,
                             margin=dict(l=0, r=0, t=0, b=0))


def target(name: str, pred: float, spread: float | None, truth: float | None, span: tuple[float, float],
           unit: str = "") -> go.Figure:
    """One galaxy's predicted value ± spread and its true value, on the axis `span` (the data's range),
    in `unit`."""
    fig = go.Figure()
    if truth is not None and np.isfinite(truth):
        fig.add_scatter(x=[truth], y=[name], mode="markers", name="true",
                        marker=dict(color=CROWD, size=14, symbol="diamond"))
    error = None if spread is None or not np.isfinite(spread) else \
        dict(type="data", array=[spread], color=MODEL, thickness=2, width=8)
    fig.add_scatter(x=[pred], y=[name], mode="markers", name="model", error_x=error,
                    marker=dict(color=MODEL, size=12))
    pad = (span[1] - span[0]) * 0.05 or 1.0
    fig.update_xaxes(range=[span[0] - pad, span[1] + pad], fixedrange=True, ticksuffix=f" {unit}" if unit else "")
    fig.update_yaxes(fixedrange=True, showticklabels=False)
    return fig.update_layout(height=110, margin=dict(l=0, r=0, t=0, b=0), showlegend=False)


def attribution(overlay: np.ndarray, cmap: str, signed: bool, height: int = 380, top: float = 1.0
                ) -> go.Figure | dict:
    """An attribution overlay with the colour bar of its map (explain.COLORMAPS); `top`: the value
    where the overlay's colours saturate (explain.display_scale), the bar's end."""
    table = explain.COLORMAPS[cmap]
    scale = [[i / (len(table) - 1), f"rgb({r:.0f},{g:.0f},{b:.0f})"] for i, (r, g, b) in enumerate(table)]
    bar = dict(x=[None], y=[None], mode="markers", showlegend=False, hoverinfo="skip",
               marker=dict(colorscale=scale, cmin=-top if signed else 0, cmax=top, showscale=True,
                           colorbar=dict(title=dict(text="attribution"), thickness=12)))
    fig = image(overlay, height)
    if isinstance(fig, dict):
        fig["data"].append({"type": "scatter", **bar})
        return fig
    fig.add_scatter(**bar)
    return fig


def framed(fig: go.Figure | dict, box: tuple[float, float, float, float], width: int, height: int,
           margin: float = 0.3) -> go.Figure | dict:
    """An image figure (`image`, `attribution`) of a `width` x `height` picture first shown around
    `box` (fractions of the picture: explain.input_box) with `margin` times its side on every side,
    within the picture; plotly's autoscale button shows the whole picture."""
    x0, y0, x1, y1 = box[0] * width, box[1] * height, box[2] * width, box[3] * height
    pad = margin * max(x1 - x0, y1 - y0)
    ranges = {"xaxis": [max(0.0, x0 - pad) - 0.5, min(width, x1 + pad) - 0.5],
              "yaxis": [min(height, y1 + pad) - 0.5, max(0.0, y0 - pad) - 0.5]}  # reversed: row 0 on top
    if isinstance(fig, dict):
        for axis, span in ranges.items():
            fig["layout"][axis]["range"] = span
        return fig
    return fig.update_layout(xaxis_range=ranges["xaxis"], yaxis_range=ranges["yaxis"])


def density(pred: np.ndarray, truth: np.ndarray, label: str) -> go.Figure:
    """Predicted vs crowd as a 2-D histogram (log colour) with the y = x line."""
    counts, edges, _ = np.histogram2d(pred, truth, bins=40, range=[[0, 1], [0, 1]])  # rows: model
    centres = (edges[:-1] + edges[1:]) / 2
    log_counts = np.log10(counts, where=counts > 0, out=np.full(counts.shape, np.nan))  # empty: blank
    fig = go.Figure(go.Heatmap(x=centres, y=centres, z=log_counts, colorscale="Viridis",
                               colorbar=dict(title="log10 n", thickness=12),
                               hovertemplate="crowd %{x:.2f}<br>model %{y:.2f}<br>"
                                             "log10 n %{z:.2f}<extra></extra>"))
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(color="#888888", dash="dash"),
                    showlegend=False, hoverinfo="skip")
    fig.update_xaxes(title=f"crowd · {label}", range=[0, 1], constrain="domain")
    fig.update_yaxes(title=f"model · {label}", range=[0, 1], scaleanchor="x")
    return fig.update_layout(height=420, margin=MARGIN)


def residuals(pred: np.ndarray, truth: np.ndarray, label: str) -> go.Figure:
    fig = px.histogram(x=pred - truth, nbins=60, labels={"x": f"model − crowd · {label}"})
    fig.add_vline(x=0, line_dash="dash", line_color="grey")
    return fig.update_layout(height=420, margin=MARGIN, yaxis_title="galaxies", bargap=0.05)


def confusion(counts: pd.DataFrame, rows: str = "crowd", columns: str = "model") -> go.Figure:
    """Top answer (or class) of `rows` (the crowd, or the truth) vs the model's; colour is the row share."""
    share = counts.div(counts.sum(axis=1).replace(0, 1), axis=0)
    fig = px.imshow(share, text_auto=False, color_continuous_scale="Blues", zmin=0, zmax=1,
                    labels=dict(x=f"{columns}'s top answer", y=f"{rows}'s top answer", color="row share"))
    fig.update_traces(text=counts.to_numpy(), texttemplate="%{text}",
                      hovertemplate=f"{rows} %{{y}}<br>{columns} %{{x}}<br>%{{text}} galaxies<extra></extra>")
    return fig.update_layout(height=120 + 45 * len(counts), margin=MARGIN)


def predicted_vs_true(pred: np.ndarray, truth: np.ndarray, spread: np.ndarray | None, label: str,
                      ids=None) -> go.Figure:
    """A regression target: predicted vs true (± spread) with the y = x line, and below it the
    residuals (predicted − true) against the true value."""
    from plotly.subplots import make_subplots
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.04)
    error = None if spread is None else dict(type="data", array=spread, color="#9DB8DB", thickness=1, width=0)
    hover = "true %{x:.3f}<br>model %{y:.3f}" + ("<br>id %{customdata}" if ids is not None else "")
    fig.add_scatter(x=truth, y=pred, mode="markers", error_y=error, customdata=ids, row=1, col=1,
                    marker=dict(color=MODEL, size=6, opacity=0.8), hovertemplate=hover + "<extra></extra>")
    lo, hi = np.nanmin([np.nanmin(truth), np.nanmin(pred)]), np.nanmax([np.nanmax(truth), np.nanmax(pred)])
    fig.add_scatter(x=[lo, hi], y=[lo, hi], mode="lines", line=dict(color="#888888", dash="dash"),
                    hoverinfo="skip", row=1, col=1)
    fig.add_scatter(x=truth, y=pred - truth, mode="markers", customdata=ids, row=2, col=1,
                    marker=dict(color=CROWD, size=5, opacity=0.8),
                    hovertemplate="true %{x:.3f}<br>residual %{y:+.3f}<extra></extra>")
    fig.add_hline(y=0, line_dash="dash", line_color="grey", row=2, col=1)
    fig.update_xaxes(title=f"true · {label}", row=2, col=1)
    fig.update_yaxes(title=f"model · {label}", row=1, col=1)
    fig.update_yaxes(title="model − true", row=2, col=1)
    return fig.update_layout(height=560, margin=MARGIN, showlegend=False)


def calibration(bins: pd.DataFrame, label: str) -> go.Figure:
    """Binned predicted spread vs the actual RMSE of the same cells (evaluate.calibration), with the
    diagonal a calibrated spread would follow."""
    top = float(np.nanmax([bins.spread.max(), bins.rmse.max(), 1e-9])) * 1.05 if len(bins) else 1.0
    fig = go.Figure(go.Scatter(x=bins.spread, y=bins.rmse, mode="lines+markers", customdata=bins.cells,
                               line=dict(color=MODEL), marker=dict(size=9),
                               hovertemplate="spread %{x:.4f}<br>RMSE %{y:.4f}<br>%{customdata:,} cells"
                                             "<extra></extra>"))
    fig.add_scatter(x=[0, top], y=[0, top], mode="lines", line=dict(color="#888888", dash="dash"),
                    hoverinfo="skip")
    fig.update_xaxes(title=f"predicted spread (bin mean) · {label}", range=[0, top], constrain="domain")
    fig.update_yaxes(title=f"actual RMSE · {label}", range=[0, top], scaleanchor="x")
    return fig.update_layout(height=420, margin=MARGIN, showlegend=False)


def scores(frame: pd.DataFrame, x: str, y: str, color: str | None = None, height: int = 340,
           barmode: str = "group", colors=(MODEL, "#AAAAAA"), unit: str = "") -> go.Figure:
    """Bars of RMSE-like values (in `unit`, named in the axis title); `color` groups them (side by
    side with barmode 'group')."""
    fig = px.bar(frame, x=x, y=y, color=color, barmode=barmode, text_auto=".3f",
                 color_discrete_sequence=list(colors), labels={y: f"{y} ({unit})" if unit else y})
    return fig.update_layout(height=height, margin=MARGIN, legend_title=None, xaxis_title=None)


def curves(steps: pd.DataFrame, epochs: pd.DataFrame, task: targets.Task | None = None) -> go.Figure:
    """Training curves: per-batch RMSE (sqrt of the loss), train and validation RMSE per epoch, with
    `task`'s units where every curve is in them (`runs.Run` turns the loss's into the labels' units
    where one factor does, `Task.loss_scale`; else the batch and train curves are of standardised
    targets, and the validation curve alone names its units)."""
    unit = task.shared_unit if task else ""
    converted = task is None or task.loss_scale is not None
    own = " (standardised)" if task and task.kind == "regression" and not converted else ""
    fig = go.Figure()
    if len(steps):
        x = steps.epoch + steps.groupby("epoch").cumcount() / steps.groupby("epoch").step.transform("count")
        fig.add_scatter(x=x, y=steps.rmse, name=f"batch (sqrt loss){own}", mode="lines",
                        line=dict(color="#BBBBBB", width=1))
    if len(epochs):
        fig.add_scatter(x=epochs.epoch, y=epochs.train_rmse, name=f"train RMSE{own}", mode="lines+markers",
                        line=dict(color=CROWD))
        fig.add_scatter(x=epochs.epoch, y=epochs.val_rmse, mode="lines+markers", line=dict(color=MODEL),
                        name="validation RMSE" + (f" ({unit})" if unit and not converted else ""))
    fig.update_xaxes(title="epoch", rangemode="tozero")
    fig.update_yaxes(title=f"RMSE ({unit})" if unit and converted else "RMSE", rangemode="tozero")
    return fig.update_layout(height=360, margin=MARGIN, legend=dict(orientation="h", y=1.12))


def shares(frame: pd.DataFrame) -> go.Figure:
    """How often each answer is the top one, one stacked bar per question (catalog.top_answer_shares)."""
    fig = px.bar(frame, x="share", y="question", color="answer", orientation="h", text="answer",
                 hover_data={"galaxies": True, "share": ":.1%"},
                 color_discrete_sequence=px.colors.qualitative.Pastel)
    fig.update_traces(textposition="inside", insidetextanchor="middle")
    fig.update_yaxes(autorange="reversed", title=None)
    return fig.update_layout(height=480, margin=MARGIN, showlegend=False, xaxis_tickformat=".0%",
                             uniformtext=dict(minsize=9, mode="hide"))


def correlations(corr: pd.DataFrame) -> go.Figure:
    fig = px.imshow(corr, zmin=-1, zmax=1, color_continuous_scale="RdBu_r", aspect="equal")
    fig.update_xaxes(tickfont_size=9, tickangle=-60).update_yaxes(tickfont_size=9)
    return fig.update_layout(height=720, margin=MARGIN, coloraxis_colorbar=dict(title="r", thickness=12))


def atlas(xy: np.ndarray, values: np.ndarray, label: str, ids: np.ndarray, height: int = 640,
          unit: str = "") -> go.Figure:
    """Every galaxy as a WebGL point at its map position (xy, (N, 2)) coloured by `values` (NaN:
    dark grey, in `unit`, named on the colour bar), its GalaxyID on hover. Arrays in, arrays out:
    60,000 points take milliseconds."""
    fits = not len(ids) or np.abs(ids).max() < 2 ** 31  # sent as int32; longer ids as text, never rounded
    fig = go.Figure(go.Scattergl(
        x=xy[:, 0], y=xy[:, 1], mode="markers", customdata=ids if fits else ids.astype(str),
        marker=dict(color=values, colorscale="Viridis", size=4, colorbar=dict(
            title=label if not unit or f"({unit})" in label else f"{label} ({unit})", thickness=12,
            ticksuffix=f" {unit}" if unit else "")),
        hovertemplate="GalaxyID %{customdata}<br>%{marker.color:.3g}" + (f" {unit}" if unit else "")
                      + "<extra></extra>"))
    fig.update_xaxes(visible=False).update_yaxes(visible=False)
    return fig.update_layout(height=height, margin=dict(l=0, r=0, t=0, b=0), dragmode="lasso")


REGION_COLOURS = px.colors.qualitative.Set2  # the wall's regions, one colour each (label frames, tour)


def atlas_mosaic(centres: np.ndarray, cell: tuple[float, float], sources: list, hover: list[str],
                 dust: np.ndarray | None = None, labels: tuple = (), borders: np.ndarray | None = None,
                 lit: np.ndarray | None = None, label_px: int = 18) -> go.Figure:
    """The map as real galaxies, on black: each image (a data URI, or None to leave its cell empty)
    fills the grid cell at its centre (atlas.mosaic); trace 0 is one invisible point a tile, carrying
    `hover` and taking clicks anywhere (the nearest tile's). `dust`: every galaxy's map position, drawn
    faint; `labels`: (x, y, text, colour) region names in `label_px` type, kept inside the map (one
    at an edge leans away from it); `borders`: (M, 2, 2) segments between regions; `lit`: (K,) which
    tiles are bright, the others dimmed. Sized by its container (height="stretch")."""
    fig = go.Figure(go.Scatter(x=centres[:, 0], y=centres[:, 1], mode="markers", text=hover,
                               customdata=np.arange(len(centres)), hovertemplate="%{text}<extra></extra>",
                               marker=dict(size=12, opacity=0)))
    if borders is not None and len(borders):  # a shape: drawn above the images, as the dust is not
        path = " ".join(f"M {a:.6g},{b:.6g} L {c:.6g},{d:.6g}" for (a, b), (c, d) in borders)
        fig.add_shape(type="path", path=path, line=dict(color="rgba(255, 255, 255, 0.8)", width=2), layer="above")
    if dust is not None:
        fig.add_scattergl(x=dust[:, 0], y=dust[:, 1], mode="markers", hoverinfo="skip",
                          marker=dict(color="rgba(255, 255, 255, 0.3)", size=2))
    dim = np.zeros(len(centres), bool) if lit is None else ~np.asarray(lit, bool)
    fig.update_layout(images=[dict(source=source, x=float(x), y=float(y), xref="x", yref="y", sizex=cell[0],
                                   sizey=cell[1], xanchor="center", yanchor="middle", sizing="contain",
                                   layer="above", opacity=0.3 if faint else 1)
                              for (x, y), source, faint in zip(centres, sources, dim) if source is not None])
    lo, hi = centres.min(axis=0) - np.array(cell) / 2, centres.max(axis=0) + np.array(cell) / 2

    def lean(value: float, axis: int, ends: tuple[str, str, str]) -> str:
        where = (value - lo[axis]) / max(hi[axis] - lo[axis], 1e-9)
        return ends[0] if where < 0.1 else ends[2] if where > 0.9 else ends[1]
    fig.update_layout(annotations=[dict(x=float(x), y=float(y), text=text, showarrow=False, bordercolor=colour,
                                        xanchor=lean(x, 0, ("left", "center", "right")),
                                        yanchor=lean(y, 1, ("bottom", "middle", "top")),
                                        bgcolor="rgba(0, 0, 0, 0.62)", borderwidth=2, borderpad=5,
                                        font=dict(color="white", size=label_px)) for x, y, text, colour in labels])
    fig.update_xaxes(visible=False, range=[lo[0], hi[0]], fixedrange=True, constrain="domain")
    fig.update_yaxes(visible=False, range=[lo[1], hi[1]], fixedrange=True, constrain="domain",
                     scaleanchor="x", scaleratio=cell[0] / cell[1])  # square cells on screen
    return fig.update_layout(margin=dict(l=0, r=0, t=0, b=0), plot_bgcolor="black", paper_bgcolor="black",
                             showlegend=False, dragmode=False, hovermode="closest", hoverdistance=-1,
                             hoverlabel=dict(font_size=16))


def randomisation(r, threshold: float) -> go.Figure:
    """Cascading randomisation (explain_checks.Randomisation) on a depth scale: how alike the map stays
    (Spearman of |map|, of the signed map, SSIM of |map|) as randomisation reaches from the head (0 %)
    down to the input (100 %); the band is the passing threshold of the map as drawn."""
    fig = go.Figure()
    lines = [("Spearman, |map|", r.spearman_abs, MODEL, "solid"), ("SSIM, |map|", r.ssim, OTHER, "dot")]
    if r.signed:
        lines.insert(0, ("Spearman, signed map", r.spearman_signed, CROWD, "solid"))
    for name, values, colour, dash in lines:
        fig.add_scatter(x=r.depth, y=values, name=name, mode="lines+markers", line=dict(color=colour, dash=dash),
                        hovertemplate="%{x:.0%} of the layers randomised<br>%{y:.2f}<extra>" + name + "</extra>")
    fig.add_hrect(y0=-threshold, y1=threshold, fillcolor="grey", opacity=0.15, line_width=0)
    fig.update_xaxes(title="randomised from the head (0 %) down to the input (100 %)", tickformat=".0%",
                     range=[-0.03, 1.03])
    fig.update_yaxes(title="alike the original map", range=[-1.05, 1.05])
    return fig.update_layout(height=380, margin=MARGIN, legend=dict(orientation="h", y=1.15))


def removal(curves, label: str) -> go.Figure:
    """The removal tests (explain_checks.Curve), one panel each, tests across and pixel / patch level
    down: the explained output as pixels go in the map's order against random orders."""
    from plotly.subplots import make_subplots
    from gzcore import explain_checks
    tests, levels = list(explain_checks.TESTS), list(explain_checks.LEVELS)
    short = {"deletion": "deletion", "insertion": "insertion", "road_morf": "ROAD, MoRF", "road_lerf": "ROAD, LeRF"}
    titles = [f"{short[c.test]} · {c.level} {'✓' if c.beats_random else '✗'}" for c in sorted(curves, key=lambda c: (levels.index(c.level), tests.index(c.test)))]
    fig = make_subplots(rows=2, cols=4, shared_yaxes=True, subplot_titles=titles, horizontal_spacing=0.03,
                        vertical_spacing=0.18)
    for c in curves:
        row, col = levels.index(c.level) + 1, tests.index(c.test) + 1
        for name, values, colour in (("the map's order", c.attributed, MODEL), ("random orders", c.random, "#AAAAAA")):
            fig.add_scatter(x=c.fractions, y=values, name=name, mode="lines", line=dict(color=colour), row=row, col=col,
                            showlegend=row == col == 1, legendgroup=name,
                            hovertemplate=f"%{{x:.0%}}<br>{label} %{{y:.3f}}<extra>{name}</extra>")
    fig.update_annotations(font_size=11)
    fig.update_xaxes(tickformat=".0%", tickvals=[0, 0.5])
    fig.update_yaxes(title_text=label, row=1, col=1)
    fig.update_yaxes(title_text=label, row=2, col=1)
    return fig.update_layout(height=480, margin=dict(l=0, r=0, t=60, b=0), legend=dict(orientation="h", y=1.16))


HELD, FITTED = "#2E9E5B", "#F2A65A"  # a held-out galaxy, one of the training split (Galaxy's badges)


def atlas_split(xy: np.ndarray, values: np.ndarray, label: str, ids: np.ndarray, split: np.ndarray | None,
                by_split: bool = False, height: int = 640, unit: str = "") -> go.Figure:
    """`atlas`, each point's split ('held out' or 'training split', from `split`; None: no split)
    on hover; `by_split` colours the points by it (`values`: 1 held out, 0 training split)."""
    fig = atlas(xy, values, label, ids, height, unit)
    if split is None:
        return fig
    fig.update_traces(text=split, hovertemplate="GalaxyID %{customdata} · %{text}<br>" + (
        "<extra></extra>" if by_split else "%{marker.color:.3g}" + (f" {unit}" if unit else "") + "<extra></extra>"))
    if by_split:  # two colours, the colour bar naming them
        fig.update_traces(marker=dict(cmin=0, cmax=1, colorscale=[[0, FITTED], [0.5, FITTED], [0.5, HELD], [1, HELD]],
                                      colorbar=dict(title="split", tickvals=[0.25, 0.75],
                                                    ticktext=["training split", "held out"])))
    return fig
