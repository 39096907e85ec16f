"""The torch module :func:`~refattr.interop.to_torch` writes for an :class:`~refattr.layers.Affine`
(no ``torch.nn`` module computes scale * x + shift per channel), and that
:func:`~refattr.interop.from_torch` reads back. torch is imported when the class is first asked for.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["affine_module_class", "to_module", "from_module"]


@lru_cache(maxsize=1)
def affine_module_class():
    """The ``nn.Module`` class ``RefattrAffine``: y = scale * x + shift, scale and shift float64
    buffers, each a number (shape ()) or one value per channel (axis 1 of the batch)."""
    import torch

    class RefattrAffine(torch.nn.Module):
        """refattr's Affine layer as a torch module: y = scale * x + shift (per channel on axis 1)."""

        def __init__(self, scale, shift):
            super().__init__()
            self.register_buffer("scale", torch.tensor(np.array(scale, dtype=np.float64)))
            self.register_buffer("shift", torch.tensor(np.array(shift, dtype=np.float64)))

        def forward(self, x):
            def along(c):
                return c if c.dim() == 0 else c.reshape((1, -1) + (1,) * (x.dim() - 2))

            return along(self.scale) * x + along(self.shift)

    return RefattrAffine


def to_module(layer):
    return affine_module_class()(layer.scale, layer.shift)


def from_module(module):
    from ..layers import Affine

    def value(t):
        a = t.detach().cpu().double().numpy()
        return float(a) if a.ndim == 0 else a.copy()

    return Affine(value(module.scale), value(module.shift))
