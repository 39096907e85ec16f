"""Guided backpropagation."""

from __future__ import annotations

from numpy.typing import ArrayLike

from .._typing import Target
from ..network import Network
from .gradient import backpropagate
from ._inputs import several_inputs
from .result import Attribution

__all__ = ["guided_backprop"]


@several_inputs
def guided_backprop(net: Network, x: ArrayLike, target: Target = None) -> Attribution:
    """The gradient with negative backward signals discarded at every ReLU.

    At a ReLU with forward input z and incoming signal g, the signal passed down is
    g * 1(z > 0) * 1(g > 0); every other layer passes its ordinary VJP (docs/conventions.md,
    section 'Gradient family').

    Warnings
    --------
    The tutorial's "Variants" formula writes the masks as 1(R > 1) on forward activations; that is
    an erratum (docs/conventions.md, section 'Errata of the tutorial'). This follows Springenberg
    et al. and matches Captum, which also modifies only ``nn.ReLU`` modules.

    References
    ----------
    Springenberg, Dosovitskiy, Brox & Riedmiller 2015, "Striving for Simplicity: The All
    Convolutional Net", section 3.4 and figure 1.

    Examples
    --------
    With f = 1 * relu(-x) + 0 (one hidden unit, output weight +1, input weight -1), the backward
    signal at the ReLU is +1 and the mask at x = -2 is open, so guided backprop equals the
    gradient -1 (masks act only at ReLUs, not on the signal's final sign).

    >>> from refattr import Dense, ReLU, Sequential, guided_backprop
    >>> net = Sequential([Dense([[-1.0]]), ReLU(), Dense([[1.0]])])
    >>> guided_backprop(net, [[-2.0]]).values
    array([[-1.]])
    """
    return backpropagate(net, x, target, "guided_backprop", "guided_backprop")
