"""Deconvolutional network (DeconvNet) attribution."""

from __future__ import annotations

from numpy.typing import ArrayLike

from .._typing import Target
from ..network import Network
from .gradient import backpropagate
from ._inputs import several_inputs
from .result import Attribution

__all__ = ["deconvnet"]


@several_inputs
def deconvnet(net: Network, x: ArrayLike, target: Target = None) -> Attribution:
    """Backward pass whose ReLUs ignore the forward input and pass only positive signals.

    At a ReLU with incoming signal g, the signal passed down is g * 1(g > 0), whatever the forward
    input; every other layer passes its ordinary VJP (docs/conventions.md, section
    'Gradient family').

    Warnings
    --------
    The tutorial writes the mask as 1(R^{l+1} > 1) on the forward output; that is an erratum
    (docs/conventions.md, section 'Errata of the tutorial'): Zeiler & Fergus rectify the
    reconstruction signal itself.

    References
    ----------
    Zeiler & Fergus 2014, "Visualizing and Understanding Convolutional Networks", section 2.1
    ("Rectification").
    """
    return backpropagate(net, x, target, "deconvnet", "deconvnet")
