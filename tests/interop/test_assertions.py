"""assert_attributions_close: passes on rounding, fails with a message that locates the difference."""

import numpy as np
import pytest

from refattr import Dense, ReLU, Sequential
from refattr.methods.integrated_gradients import integrated_gradients
from refattr.testing.assertions import assert_attributions_close


def test_passes_within_rounding():
    a = np.array([[1.0, -2.0, 3.0]])
    assert_attributions_close(a, a * (1 + 1e-15))
    assert_attributions_close(a, a + 1e-9, rtol=0, atol=1e-8)


def test_message_names_index_values_and_sizes():
    expected = np.zeros((2, 3, 4))
    actual = expected.copy()
    actual[1, 2, 3] = 1e-6
    expected[1, 2, 3] = 2e-6
    with pytest.raises(AssertionError) as info:
        assert_attributions_close(actual, expected)
    message = str(info.value)
    assert "1 of 24 attribution(s) differ" in message
    assert "largest difference at index (1, 2, 3): actual 1e-06, expected 2e-06, |diff| 1e-06 (relative 0.5)" in message


def test_example_scale_ignores_tiny_entries_next_to_large_ones():
    expected = np.array([[1.0, 1e-20]])
    actual = np.array([[1.0, 2e-20]])
    with pytest.raises(AssertionError):
        assert_attributions_close(actual, expected, rtol=1e-12)
    assert_attributions_close(actual, expected, rtol=1e-12, scale="example")


def test_completeness_from_an_attribution_and_from_an_array():
    # f(x) = relu(x1 - x2): exact IG sums to f(x) - f(0)
    net = Sequential([Dense([[1.0, -1.0]]), ReLU()])
    x = np.array([[3.0, 1.0], [0.5, 2.0]])
    reference = integrated_gradients(net, x, rule="exact")
    assert_attributions_close(reference.values, reference, completeness=True)
    assert_attributions_close(reference.values, reference.values, completeness=[2.0, 0.0])
    biased = reference.values * 0.98  # Captum's trapezoid weights sum to (n - 1)/n
    with pytest.raises(AssertionError) as info:
        assert_attributions_close(biased, reference, rtol=0.05, completeness=True, completeness_atol=1e-12)
    message = str(info.value)
    assert message.startswith("completeness fails for 1 of 2 example(s) (first: example 0, gap -0.04)")
    assert "completeness gap sum(phi) - (t(x) - t(x')) per example: actual [-0.04,  0.  ]" in message


def test_shape_nan_and_bad_completeness_arguments():
    with pytest.raises(AssertionError, match=r"differ in shape: actual \(1, 2\), expected \(2, 1\)"):
        assert_attributions_close(np.ones((1, 2)), np.ones((2, 1)))
    with pytest.raises(AssertionError, match=r"actual holds 1 non-finite value\(s\), first at index \(0, 1\)"):
        assert_attributions_close(np.array([[1.0, np.nan]]), np.ones((1, 2)))
    with pytest.raises(AssertionError, match="needs `expected` to be an Attribution"):
        assert_attributions_close(np.ones((1, 2)), np.ones((1, 2)), completeness=True)
    with pytest.raises(AssertionError, match=r"shape \(1,\)"):
        assert_attributions_close(np.ones((1, 2)), np.ones((1, 2)), completeness=[1.0, 2.0])
