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


def test_plot_attributions_colour_image(mpl, tmp_path):
    from refattr.plotting import plot_attributions, save_figure

    rng = np.random.default_rng(1)
    fig = plot_attributions(rng.uniform(size=(3, 5, 5)), {"m": rng.normal(size=(3, 5, 5))}, how="max_abs",
                            pixel_scaling=True)
    _nonempty_png(save_figure(fig, tmp_path / "rgb.png"))


def test_plot_integrand_marks_breakpoints(mpl, tmp_path):
    from refattr.plotting import plot_integrand, save_figure

    alphas = np.linspace(0.0, 1.0, 101)
    values = np.where(alphas < 0.3, 1.0, 2.0)
    fig = plot_integrand(alphas, values, [0.3], labels=["dt/da"], title="step")
    ax = fig.axes[0]
    assert len(ax.collections) == 1                      # one vlines collection for the breakpoints
    np.testing.assert_array_equal(ax.collections[0].get_segments()[0][:, 0], [0.3, 0.3])
    _nonempty_png(save_figure(fig, tmp_path / "integrand.png"))
    # several curves, no breakpoints (and no legend warning with nothing labelled)
    fig = plot_integrand(alphas, np.stack([values, -values], axis=1), np.zeros(0))
    _nonempty_png(save_figure(fig, tmp_path / "integrand2.png"))
    with pytest.raises(ShapeError, match="integrand"):
        plot_integrand(alphas, values[:-1])
    with pytest.raises(ShapeError, match="labels"):
        plot_integrand(alphas, values, labels=["a", "b"])
