"""refattr.plotting: channel aggregation and pixel scaling by hand, figures written to disk."""

import subprocess
import sys

import numpy as np
import pytest

from refattr.errors import ShapeError
from refattr.plotting import aggregate_channels, scale_pixels, symmetric_limits

# Two channels of a 2x2 image:
#   channel 0 = [[ 1, -2],      channel 1 = [[-3, 0.5],
#                [ 0,  4]]                   [ 2, -4 ]]
A = np.array([[[1.0, -2.0], [0.0, 4.0]],
              [[-3.0, 0.5], [2.0, -4.0]]])


def test_aggregate_max_abs_is_the_largest_magnitude_over_channels():
    # max(|1|, |-3|) = 3, max(|-2|, |0.5|) = 2, max(|0|, |2|) = 2, max(|4|, |-4|) = 4
    np.testing.assert_array_equal(aggregate_channels(A, "max_abs"), [[3.0, 2.0], [2.0, 4.0]])


def test_aggregate_sum_abs_is_the_sum_of_magnitudes():
    # 1 + 3 = 4, 2 + 0.5 = 2.5, 0 + 2 = 2, 4 + 4 = 8
    np.testing.assert_array_equal(aggregate_channels(A, "sum_abs"), [[4.0, 2.5], [2.0, 8.0]])


def test_aggregate_sum_keeps_signs():
    # 1 - 3 = -2, -2 + 0.5 = -1.5, 0 + 2 = 2, 4 - 4 = 0
    np.testing.assert_array_equal(aggregate_channels(A, "sum"), [[-2.0, -1.5], [2.0, 0.0]])


def test_aggregate_batch_reduces_axis_minus_three():
    batch = np.stack([A, -2.0 * A])
    out = aggregate_channels(batch, "sum_abs")
    assert out.shape == (2, 2, 2)
    np.testing.assert_array_equal(out[1], 2.0 * aggregate_channels(A, "sum_abs"))


def test_aggregate_one_channel_sum_is_identity():
    one = A[:1]
    np.testing.assert_array_equal(aggregate_channels(one, "sum"), A[0])


def test_aggregate_rejects_unknown_rule_and_wrong_rank():
    with pytest.raises(ValueError, match="how"):
        aggregate_channels(A, "mean")
    with pytest.raises(ShapeError, match="values"):
        aggregate_channels(A[0], "sum")


def test_symmetric_limits():
    assert symmetric_limits(A) == (-4.0, 4.0)
    assert symmetric_limits(np.zeros((2, 2))) == (-1.0, 1.0)


def test_scale_pixels_by_hand():
    image = np.array([[[1.0, 0.5], [0.25, 1.0]],
                      [[0.5, 0.5], [1.0, 0.0]]])
    # sum_abs of A is [[4, 2.5], [2, 8]]; divided by its maximum 8: [[0.5, 0.3125], [0.25, 1]],
    # the same factor for both channels of a pixel.
    factors = np.array([[0.5, 0.3125], [0.25, 1.0]])
    np.testing.assert_array_equal(scale_pixels(image, A), image * factors)
    # max_abs of A is [[3, 2], [2, 4]] -> / 4
    np.testing.assert_array_equal(scale_pixels(image, A, how="max_abs"), image * np.array([[0.75, 0.5], [0.5, 1.0]]))


def test_scale_pixels_clip_percentile_and_zero_map():
    image = np.ones((1, 1, 4))
    attr = np.array([[[1.0, 2.0, 3.0, 4.0]]])
    # The 50th percentile of (1, 2, 3, 4) is 2.5 (linear interpolation): factors 0.4, 0.8, 1, 1.
    np.testing.assert_allclose(scale_pixels(image, attr, clip_percentile=50), [[[0.4, 0.8, 1.0, 1.0]]],
                               rtol=1e-15)
    np.testing.assert_array_equal(scale_pixels(image, np.zeros_like(attr)), np.zeros_like(image))
    with pytest.raises(ShapeError, match="image, attribution"):
        scale_pixels(image, attr[..., :3])
    with pytest.raises(ValueError, match="clip_percentile"):
        scale_pixels(image, attr, clip_percentile=0)


def test_module_imports_without_matplotlib():
    code = ("import sys; sys.modules['matplotlib'] = None; import refattr.plotting as p; "
            "print(p.aggregate_channels([[[1.0]], [[-3.0]]], 'max_abs')[0, 0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "3.0"


# figures ------------------------------------------------------------------------------------------
@pytest.fixture
def mpl():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    return matplotlib


def _nonempty_png(path):
    assert path.exists() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_heatmap_is_centred_at_zero(mpl):
    from matplotlib.figure import Figure

    from refattr.plotting import heatmap

    ax = Figure().subplots()
    im = heatmap(ax, A, how="sum")    # sum over channels is [[-2, -1.5], [2, 0]] -> limits +-2
    assert im.get_clim() == (-2.0, 2.0)
    assert im.get_cmap().name == "RdBu_r"


def test_plot_attributions_writes_a_figure(mpl, tmp_path):
    from refattr.plotting import plot_attributions, save_figure

    rng = np.random.default_rng(0)
    image = rng.uniform(size=(1, 8, 8))
    maps = {"a": rng.normal(size=(1, 8, 8)), "b": np.zeros((1, 8, 8)), "c": rng.normal(size=(8, 8))}
    for kwargs in ({}, {"shared_scale": True, "pixel_scaling": True, "title": "t"}):
        fig = plot_attributions(image, maps, **kwargs)
        assert len(fig.axes) >= 4
        path = save_figure(fig, tmp_path / "sub" / f"attr{len(kwargs)}.png")
        _nonempty_png(path)
    with pytest.raises(ValueError, match="attributions"):
        plot_attributions(image, {})


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_save_figure_writes_the_same_bytes_twice(mpl, tmp_path, suffix, monkeypatch):
    from refattr.plotting import plot_attributions, save_figure

    rng = np.random.default_rng(2)
    image, maps = rng.uniform(size=(4, 4)), {"m": rng.normal(size=(4, 4))}
    # The same figure saved at two different dates (matplotlib dates PDF and SVG files from
    # SOURCE_DATE_EPOCH when set) must give the same bytes: no date is written, and SVG's element
    # ids, random by default, come from a fixed salt.
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    first = save_figure(plot_attributions(image, maps), tmp_path / f"a{suffix}").read_bytes()
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1000000000")
    second = save_figure(plot_attributions(image, maps), tmp_path / f"b{suffix}").read_bytes()
    assert first == second


def test_plot_attributions_colour_image(mpl, tmp_path):
    from refattr.plotting import plot_attributions, save_figure

    rng = np.random.default_rng(1)
    fig = plot_attributions(rng.uniform(size=(3, 5, 5)), {"m": rng.normal(size=(3, 5, 5))}, how="max_abs",
                            pixel_scaling=True)
    _nonempty_png(save_figure(fig, tmp_path / "rgb.png"))


def _heatmaps(fig):
    """(title, AxesImage) of every heatmap panel (diverging colormap) in ``fig``."""
    return [(ax.get_title(), ax.images[0]) for ax in fig.axes
            if ax.images and ax.images[0].get_cmap().name == "RdBu_r"]


def test_plot_attributions_shares_one_symmetric_scale_by_default(mpl):
    from refattr.plotting import plot_attributions

    # max |a| over both maps is |-5| = 5 (map "b"); map "a" alone would get (-3, 3).
    a = np.array([[1.0, -3.0], [2.0, 0.0]])
    b = np.array([[0.5, -5.0], [0.0, 4.0]])
    fig = plot_attributions(np.ones((2, 2)), {"a": a, "b": b}, title="two maps")
    panels = _heatmaps(fig)
    assert [title for title, _ in panels] == ["a", "b"]
    assert all(im.get_clim() == (-5.0, 5.0) for _, im in panels)
    assert "one colour scale for all maps" in fig._suptitle.get_text()
    assert fig._suptitle.get_text().startswith("two maps")
    # one colour bar for the two maps (a colour bar is an Axes holding no image)
    assert sum(1 for ax in fig.axes if not ax.images) == 1
    # per-map scales on request: each its own max, and the title claims no shared scale
    fig = plot_attributions(np.ones((2, 2)), {"a": a, "b": b}, shared_scale=False)
    assert [im.get_clim() for _, im in _heatmaps(fig)] == [(-3.0, 3.0), (-5.0, 5.0)]
    assert fig._suptitle is None


def test_plot_attributions_difference_panel_has_its_own_scale(mpl):
    from refattr.plotting import plot_attributions

    a = np.array([[1.0, -3.0], [2.0, 0.0]])
    b = np.array([[0.5, -5.0], [0.0, 4.0]])
    fig = plot_attributions(np.ones((2, 2)), {"a": a, "b": b}, differences={"a - b": ("a", "b")}, n_cols=2)
    (_, im_a), (_, im_b), (title, im_d) = _heatmaps(fig)
    # a - b = [[0.5, 2], [2, -4]]: limits +-4 (its own), sum 0.5 + 2 + 2 - 4 = 0.5
    np.testing.assert_array_equal(im_d.get_array(), [[0.5, 2.0], [2.0, -4.0]])
    assert im_d.get_clim() == (-4.0, 4.0)
    assert im_a.get_clim() == im_b.get_clim() == (-5.0, 5.0)
    assert title == "a - b\nsum +0.5"
    labels = [ax.get_ylabel() for ax in fig.axes if not ax.images]
    assert "difference (own scale)" in labels
    # 4 panels (input, a, b, a - b) in 2 columns: two rows
    rows = {ax.get_subplotspec().rowspan.start for ax in fig.axes if ax.images}
    assert rows == {0, 1}
    from refattr.errors import ArgumentError
    with pytest.raises(ArgumentError, match="differences"):
        plot_attributions(np.ones((2, 2)), {"a": a}, differences={"a - c": ("a", "c")})
    with pytest.raises(ArgumentError, match="n_cols"):
        plot_attributions(np.ones((2, 2)), {"a": a}, n_cols=0)


def test_pixel_scaling_row_is_labelled(mpl):
    from refattr.plotting import plot_attributions

    fig = plot_attributions(np.ones((1, 2, 2)), {"a": np.ones((1, 2, 2))}, pixel_scaling=True)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any(t.startswith("pixel scaling") and "own max" in t for t in texts)


def _inside_figure(fig, artist):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)                          # runs the constrained layout
    box, frame = artist.get_window_extent(renderer), fig.bbox
    return box.x0 >= frame.x0 and box.x1 <= frame.x1 and box.y0 >= frame.y0 and box.y1 <= frame.y1


def test_long_titles_are_wrapped_not_clipped(mpl):
    from refattr.plotting import plot_attributions, plot_integrand

    long = "digit 0: " + "a title far longer than the figure is wide, " * 3
    alphas = np.linspace(0.0, 1.0, 11)
    fig = plot_integrand(alphas, alphas, title=long)
    title = fig.axes[0].title
    assert "\n" in title.get_text() and _inside_figure(fig, title)
    fig = plot_attributions(np.ones((2, 2)), {"a": np.eye(2)}, title="digit 0")
    assert _inside_figure(fig, fig._suptitle)


def test_plot_integrand_marks_breakpoints(mpl, tmp_path):
    from refattr.plotting import plot_integrand, save_figure

    alphas = np.linspace(0.0, 1.0, 101)
    values = np.where(alphas < 0.3, 1.0, 2.0)
    fig = plot_integrand(alphas, values, [0.3], labels=["dt/da"], title="step")
    ax = fig.axes[0]
    assert len(ax.collections) == 1                      # one vlines collection for the breakpoints
    segment = ax.collections[0].get_segments()[0]
    np.testing.assert_array_equal(segment[:, 0], [0.3, 0.3])
    # a rug: a tick from the axis up to 4 % of the height (axes coordinates), not a full line
    np.testing.assert_array_equal(segment[:, 1], [0.0, 0.04])
    assert ax.collections[0].get_transform() == ax.get_xaxis_transform()
    _nonempty_png(save_figure(fig, tmp_path / "integrand.png"))
    # several curves, no breakpoints (and no legend warning with nothing labelled)
    fig = plot_integrand(alphas, np.stack([values, -values], axis=1), np.zeros(0))
    _nonempty_png(save_figure(fig, tmp_path / "integrand2.png"))
    with pytest.raises(ShapeError, match="integrand"):
        plot_integrand(alphas, values[:-1])
    with pytest.raises(ShapeError, match="labels"):
        plot_integrand(alphas, values, labels=["a", "b"])
