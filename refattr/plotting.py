"""Pictures of attributions: heatmaps, channel aggregation, pixel scaling, the IG integrand.

The array functions (:func:`aggregate_channels`, :func:`symmetric_limits`, :func:`scale_pixels`)
need NumPy only. The drawing functions import matplotlib when called (``pip install
refattr[plot]``); this module imports without it. They build :class:`matplotlib.figure.Figure`
objects directly, without ``pyplot``, so no GUI backend is touched and nothing has to be closed;
write one with ``fig.savefig(path)`` or :func:`save_figure`.

Conventions
-----------
- Heatmaps use a diverging colormap centred at zero with symmetric limits +-max|a|, so equal
  colours mean equal magnitudes and white means zero (red positive, blue negative by default).
  An all-zero map gets limits +-1 (every cell at the centre colour).
- :func:`plot_attributions` puts every map of a figure on one such scale by default (one colour
  bar, and the figure title says so), so that colours compare across methods; a difference panel
  (``differences=``) gets its own scale and labelled colour bar.
- :func:`save_figure` writes the same bytes for the same figure on every run with the same
  matplotlib (no dates in the file).
- Images are (C, H, W) (one example, NCHW without the batch axis) or (H, W).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from ._typing import Aggregation, Axes, AxesImage, Figure, PathLike
from .errors import ArgumentError, NonFiniteError, ShapeError

__all__ = ["AGGREGATIONS", "aggregate_channels", "symmetric_limits", "scale_pixels", "heatmap",
           "plot_attributions", "plot_integrand", "save_figure"]

#: How :func:`aggregate_channels` reduces the channel axis.
AGGREGATIONS = ("max_abs", "sum_abs", "sum")

#: Default diverging colormap: red for positive, blue for negative, white at zero.
DIVERGING_CMAP = "RdBu_r"


# arrays -----------------------------------------------------------------------------------------
def aggregate_channels(values: ArrayLike, how: Aggregation = "sum", channel_axis: int = -3) -> np.ndarray:
    """Reduce attributions over the channel axis to one number per pixel.

    Parameters
    ----------
    values : array_like, shape (..., C, H, W)
        One image's attributions (C, H, W) or a batch (N, C, H, W).
    how : {"max_abs", "sum_abs", "sum"}
        - ``"max_abs"``: max_c |a_c|, the largest magnitude over channels (Simonyan et al. 2014,
          section 3.1);
        - ``"sum_abs"``: sum_c |a_c|, the sum of magnitudes (Sundararajan et al. 2017, section 6.1);
        - ``"sum"``: sum_c a_c, signed; keeps the sign for a diverging heatmap, and for one channel
          it returns the attributions unchanged.
    channel_axis : int
        The axis holding the channels; -3 for NCHW and CHW.

    Returns
    -------
    ndarray
        ``values`` without the channel axis, float64.

    Examples
    --------
    Two channels, one pixel each: max(|1|, |-3|) = 3, |1| + |-3| = 4, 1 + (-3) = -2.

    >>> a = [[[1.0]], [[-3.0]]]
    >>> aggregate_channels(a, "max_abs"), aggregate_channels(a, "sum_abs"), aggregate_channels(a, "sum")
    (array([[3.]]), array([[4.]]), array([[-2.]]))
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim < 3:
        raise ShapeError(f"values: expected at least 3 dimensions (..., C, H, W), got shape {arr.shape}")
    if how == "max_abs":
        return np.max(np.abs(arr), axis=channel_axis)
    if how == "sum_abs":
        return np.sum(np.abs(arr), axis=channel_axis)
    if how == "sum":
        return np.sum(arr, axis=channel_axis)
    raise ArgumentError(f"how: unknown channel aggregation {how!r}; expected one of {AGGREGATIONS}")


def symmetric_limits(values: ArrayLike) -> tuple[float, float]:
    """Colour limits (-m, m) with m = max|a|, so that zero sits at the colormap's centre.

    An all-zero (or empty) array gets (-1.0, 1.0).

    Examples
    --------
    >>> symmetric_limits([[0.5, -2.0], [1.0, 0.0]])
    (-2.0, 2.0)
    >>> symmetric_limits([0.0, 0.0])
    (-1.0, 1.0)
    """
    arr = np.asarray(values, dtype=np.float64)
    m = float(np.max(np.abs(arr))) if arr.size else 0.0
    if not np.isfinite(m):
        raise NonFiniteError(f"values: expected finite attributions, found max |a| = {m}")
    return (-m, m) if m > 0 else (-1.0, 1.0)


def scale_pixels(image: ArrayLike, attribution: ArrayLike, how: Aggregation = "sum_abs",
                 clip_percentile: float | None = None) -> np.ndarray:
    """The image with every pixel's intensities scaled in proportion to |attribution|.

    The visualisation of Sundararajan et al. 2017 (section 6.1 and their figures): with
    s = aggregate_channels(attribution, how) per pixel (a magnitude for "max_abs" and "sum_abs";
    its absolute value for "sum"), normalised by its maximum (or by its ``clip_percentile``-th
    percentile, values above clipped to 1), the result is image * s / max(s), every channel of a
    pixel scaled by the same factor. An all-zero attribution gives an all-zero image.

    Parameters
    ----------
    image : array_like, shape (C, H, W)
        Intensities, e.g. in [0, 1].
    attribution : array_like, shape (C, H, W)
    how : {"max_abs", "sum_abs", "sum"}
        Channel aggregation, see :func:`aggregate_channels`.
    clip_percentile : float in (0, 100], optional
        Normalise by this percentile of s instead of its maximum (Sundararajan et al.'s code
        clips at the 99th), so that a few extreme pixels do not darken the rest.

    Returns
    -------
    ndarray, shape (C, H, W)

    Examples
    --------
    One channel, two pixels of intensity 1 and 0.5 with attributions -2 and 1: the factors are
    |-2| / 2 = 1 and |1| / 2 = 0.5.

    >>> scale_pixels([[[1.0, 0.5]]], [[[-2.0, 1.0]]])
    array([[[1.  , 0.25]]])
    """
    img = np.asarray(image, dtype=np.float64)
    attr = np.asarray(attribution, dtype=np.float64)
    if img.ndim != 3 or img.shape != attr.shape:
        raise ShapeError(
            f"image, attribution: expected two arrays of the same shape (C, H, W), got {img.shape} and {attr.shape}"
        )
    strength = np.abs(aggregate_channels(attr, how))
    if clip_percentile is None:
        top = float(np.max(strength))
    else:
        if not 0 < clip_percentile <= 100:
            raise ArgumentError(f"clip_percentile: expected a number in (0, 100], got {clip_percentile!r}")
        top = float(np.percentile(strength, clip_percentile))
    if top == 0.0:
        return np.zeros_like(img)
    return img * np.minimum(strength / top, 1.0)[None, :, :]


# figures ----------------------------------------------------------------------------------------
def _figure(figsize):
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def _as_2d(values: ArrayLike, how: Aggregation) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 2:
        return arr
    if arr.ndim == 3:
        return aggregate_channels(arr, how)
    raise ShapeError(f"values: expected one image's attributions, (H, W) or (C, H, W), got shape {arr.shape}")


def heatmap(ax: Axes, values: ArrayLike, *, how: Aggregation = "sum", cmap: str = DIVERGING_CMAP,
            limits: tuple[float, float] | None = None, title: str | None = None, colorbar: bool = True) -> AxesImage:
    """Draw attributions on ``ax`` with a diverging colormap centred at zero.

    Parameters
    ----------
    ax : matplotlib Axes
    values : array_like, shape (H, W) or (C, H, W)
        Channels are reduced with :func:`aggregate_channels` (``how``).
    how : {"max_abs", "sum_abs", "sum"}
    cmap : str
        A diverging colormap.
    limits : (float, float), optional
        Colour limits; defaults to :func:`symmetric_limits` of the aggregated values.
    title : str, optional
    colorbar : bool

    Returns
    -------
    matplotlib.image.AxesImage
    """
    arr = _as_2d(values, how)
    lo, hi = symmetric_limits(arr) if limits is None else limits
    im = ax.imshow(arr, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=9)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, shrink=0.8)
    return im


def _wrap(name: str, width: int = 22) -> str:
    return textwrap.fill(name, width=width, break_long_words=False)


def _show_image(ax, image, title):
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 3 and img.shape[0] == 1:
        img = img[0]
    if img.ndim == 3:          # (C, H, W) colour -> (H, W, C), clipped to [0, 1] for imshow
        ax.imshow(np.clip(np.moveaxis(img, 0, -1), 0.0, 1.0), interpolation="nearest")
    else:
        ax.imshow(img, cmap="gray_r", interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)


def plot_attributions(image: ArrayLike, attributions: Mapping[str, ArrayLike], *, how: Aggregation = "sum",
                      shared_scale: bool = True, differences: Mapping[str, tuple[str, str]] | None = None,
                      pixel_scaling: bool = False, n_cols: int | None = None, title: str | None = None,
                      cmap: str = DIVERGING_CMAP) -> Figure:
    """An input image next to the attribution heatmaps of several methods.

    Parameters
    ----------
    image : array_like, shape (C, H, W) or (H, W)
        One input; one channel is drawn in grey (dark = high intensity), three as colour.
    attributions : mapping of str to array_like of shape (C, H, W) or (H, W)
        Method name -> that method's attributions for ``image``; drawn in this order.
    how : {"max_abs", "sum_abs", "sum"}
        Channel aggregation (:func:`aggregate_channels`); "sum" keeps signs.
    shared_scale : bool
        True (default): one symmetric colour scale (-m, m), m = max |a| over every map, drawn as
        one colour bar under the maps, so equal colours mean equal values across methods; the
        figure title says so. False: each map gets its own symmetric scale and colour bar
        (compare patterns, not magnitudes).
    differences : mapping of str to (str, str), optional
        Panel label -> (name, reference), two keys of ``attributions``: adds a panel of
        ``attributions[name] - attributions[reference]`` after the maps, with its own symmetric
        scale, a colour bar labelled "difference", and the difference's sum in its title (for two
        reference-based methods, the difference of their completeness gaps). Shows what a shared
        scale hides, e.g. a 50-point quadrature against the exact integral.
    pixel_scaling : bool
        Add a row of :func:`scale_pixels` views (Sundararajan et al. 2017, section 6.1): the input
        with every pixel multiplied by |a| / max |a| of that map. Each view is normalised by its
        own maximum, so it shows where a method puts its weight, not how much; the row is labelled
        so.
    n_cols : int, optional
        Panels per row (the input counts as one); all in one row by default.
    title : str, optional
        Figure title; with a shared scale, "(one colour scale for all maps, |a| <= m)" is added.
    cmap : str
        A diverging colormap.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not attributions:
        raise ArgumentError("attributions: expected at least one method's attributions, got none")
    maps = {name: _as_2d(values, how) for name, values in attributions.items()}
    diffs = {}
    for label, pair in (differences or {}).items():
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(name in maps for name in pair)):
            raise ArgumentError(f"differences[{label!r}]: expected (name, reference), two keys of attributions "
                                f"{list(maps)}, got {pair!r}")
        diffs[label] = maps[pair[0]] - maps[pair[1]]
    n_panels = 1 + len(maps) + len(diffs)
    n_cols = n_panels if n_cols is None else n_cols
    if isinstance(n_cols, bool) or not isinstance(n_cols, (int, np.integer)) or n_cols < 1:
        raise ArgumentError(f"n_cols: expected a positive integer, got {n_cols!r}")
    rows_maps = -(-n_panels // n_cols)
    rows_scaled = -(-(1 + len(maps)) // n_cols) if pixel_scaling else 0
    fig = _figure((2.1 * n_cols, 2.3 * (rows_maps + rows_scaled) + 0.8))
    grid = fig.add_gridspec(rows_maps + rows_scaled, n_cols)

    def cell(k, first_row=0):
        return fig.add_subplot(grid[first_row + k // n_cols, k % n_cols])

    panels = [cell(k) for k in range(n_panels)]
    _show_image(panels[0], image, "input")
    limits = symmetric_limits(np.stack(list(maps.values()))) if shared_scale else None
    map_axes = panels[1:1 + len(maps)]
    for ax, (name, values) in zip(map_axes, maps.items()):
        heatmap(ax, values, limits=limits, title=_wrap(name), cmap=cmap, colorbar=not shared_scale)
    if shared_scale:
        bar = fig.colorbar(map_axes[0].images[0], ax=map_axes, location="bottom", shrink=0.6, aspect=40)
        bar.set_label(f"attribution (one scale for all {len(maps)} maps)", fontsize=8)
    for ax, (label, values) in zip(panels[1 + len(maps):], diffs.items()):
        im = heatmap(ax, values, cmap=cmap, colorbar=False,
                     title=f"{_wrap(label)}\nsum {float(np.sum(values)):+.3g}")
        fig.colorbar(im, ax=ax, shrink=0.8).set_label("difference (own scale)", fontsize=8)

    if pixel_scaling:
        img = np.asarray(image, dtype=np.float64)
        img3 = img[None] if img.ndim == 2 else img
        legend = cell(0, rows_maps)
        legend.set_axis_off()
        legend.text(0.5, 0.5, "pixel scaling:\ninput x |a| / max |a|,\neach map scaled\nby its own max",
                    ha="center", va="center", fontsize=8, transform=legend.transAxes)
        for k, (name, values) in enumerate(attributions.items(), start=1):
            attr = np.asarray(values, dtype=np.float64)
            attr3 = attr[None] if attr.ndim == 2 else attr
            _show_image(cell(k, rows_maps), scale_pixels(img3, attr3, how="sum_abs"), _wrap(name))

    if shared_scale:
        m = limits[1]
        note = f"(one colour scale for all maps, |a| <= {m:.3g})"
        title = note if title is None else f"{title}\n{note}"
    if title is not None:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_integrand(alphas: ArrayLike, integrand: ArrayLike, breakpoints: ArrayLike | None = None, *,
                   labels: Sequence[str] | None = None, title: str | None = None, ax: Axes | None = None) -> Figure:
    """The integrated-gradients integrand along the path, with the path's breakpoints marked.

    Parameters
    ----------
    alphas : array_like, shape (M,)
        Positions a in [0, 1] on the path x' + a (x - x').
    integrand : array_like, shape (M,) or (M, K)
        Values at ``alphas``, one curve per column, e.g. d t / d a = sum_i (x_i - x'_i) grad_i
        (its integral over [0, 1] is t(x) - t(x')) or single features' (x_i - x'_i) grad_i.
    breakpoints : array_like, shape (B,), optional
        Where the integrand may jump (a ReLU input crossing zero, a max-pool winner changing);
        drawn as a rug of short ticks on the x axis, so that hundreds of them do not hide the curve.
    labels : sequence of str, optional
        One label per curve.
    title : str, optional
    ax : matplotlib Axes, optional
        Draw into this Axes instead of a new figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    a = np.asarray(alphas, dtype=np.float64)
    values = np.asarray(integrand, dtype=np.float64)
    if a.ndim != 1:
        raise ShapeError(f"alphas: expected a 1-D array, got shape {a.shape}")
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or values.shape[0] != a.shape[0]:
        raise ShapeError(
            f"integrand: expected shape ({a.shape[0]},) or ({a.shape[0]}, K) to match alphas, got {np.shape(integrand)}"
        )
    if labels is not None and len(labels) != values.shape[1]:
        raise ShapeError(f"labels: expected {values.shape[1]} labels, one per curve, got {len(labels)}")
    if ax is None:
        fig = _figure((7.0, 3.6))
        ax = fig.subplots()
    else:
        fig = ax.figure
    points = np.zeros(0) if breakpoints is None else np.asarray(breakpoints, dtype=np.float64).ravel()
    if points.size:      # a rug on the x axis: light ticks, not lines across the curve
        ax.vlines(points, 0.0, 0.04, transform=ax.get_xaxis_transform(), colors="0.45", linewidth=0.5,
                  zorder=3, label=f"breakpoints ({points.size}), ticks on the axis")
    for k in range(values.shape[1]):
        ax.plot(a, values[:, k], linewidth=1.2, label=None if labels is None else labels[k])
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_xlim(float(a.min()), float(a.max()))
    ax.set_xlabel("alpha (position on the path x' + alpha (x - x'))")
    ax.set_ylabel("integrand")
    if labels is not None or points.size:
        ax.legend(fontsize=8, loc="best")
    if title is not None:
        # wrapped to the axes' width (about half an em per character) instead of being clipped
        width_in = ax.get_position().width * fig.get_size_inches()[0]
        ax.set_title(textwrap.fill(title, width=max(20, int(width_in * 72 / (0.5 * 10)))), fontsize=10)
    return fig


# Metadata that would differ between two runs (dates; SVG's random ids are fixed in save_figure).
_FIXED_METADATA = {".pdf": {"CreationDate": None}, ".svg": {"Date": None}}


def save_figure(fig: Figure, path: PathLike, dpi: float = 110) -> Path:
    """Write ``fig`` to ``path`` (format from the suffix), creating parent directories.

    The same figure gives the same bytes on every run with the same matplotlib: PNG carries no
    date, PDF and SVG are written without one, and SVG's element ids come from a fixed salt.

    Returns
    -------
    pathlib.Path
    """
    import matplotlib

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with matplotlib.rc_context({"svg.hashsalt": "refattr"}):
        fig.savefig(path, dpi=dpi, metadata=_FIXED_METADATA.get(path.suffix.lower()))
    return path
