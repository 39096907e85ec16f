"""2-D average and max pooling and their VJPs, float64, NCHW: definitions and kernels.

Each kernel follows the NumPy definition it accelerates (``avgpool2d_forward_numpy`` etc.: loops
over the kernel taps with whole-array slicing) and is registered against it
(:func:`refattr.kernels.registry.accelerates`); the public name runs the kernel, or the definition
under ``REFATTR_KERNELS=numpy``. Max pooling's forward pass agrees bit for bit (values and
``argmax``), the rest to rounding (the order of the additions differs).

Conventions: ``kernel = (kH, kW)``, ``stride = (sh, sw)``, ``input_hw = (H, W)``,
``padding = (top, bottom, left, right)`` (Python ints); floor mode,
``OH = (H + top + bottom - kH) // sh + 1``, likewise ``OW``. Padded cells are 0 for average
pooling and ``-inf`` for max pooling (padding never wins). The kernels' outer loop is a ``prange``
over the batch axis, each iteration writing only its own sample, so results do not depend on the
number of threads.
"""

from __future__ import annotations

import numpy as np

from ._geometry import check_geometry as _plain_check_geometry
from ._geometry import jit_check_geometry as _check_geometry
from ._geometry import jit_out_size as _out_size
from ._geometry import out_size as _plain_out_size
from ._geometry import pad as _pad
from ._geometry import tap_slices as _tap_slices
from ._jit import jit, jit_parallel, prange
from .registry import accelerates

__all__ = ["avgpool2d_forward", "avgpool2d_vjp", "maxpool2d_forward", "maxpool2d_vjp",
           "avgpool2d_forward_numpy", "avgpool2d_vjp_numpy", "maxpool2d_forward_numpy", "maxpool2d_vjp_numpy"]


# NumPy definitions ---------------------------------------------------------------------------

def _avg_divisor(H, W, kernel, stride, padding, count_include_pad, OH, OW):
    """Divisor of each output window, shape (OH, OW)."""
    kH, kW = kernel
    if count_include_pad:
        return np.full((OH, OW), float(kH * kW))
    sh, sw = stride
    top, bottom, left, right = padding
    starts_h = np.arange(OH) * sh - top
    starts_w = np.arange(OW) * sw - left
    nh = np.clip(np.minimum(starts_h + kH, H) - np.maximum(starts_h, 0), 0, None)
    nw = np.clip(np.minimum(starts_w + kW, W) - np.maximum(starts_w, 0), 0, None)
    return np.outer(nh, nw).astype(np.float64)


def avgpool2d_forward_numpy(x, kernel, stride, padding, count_include_pad):
    """2-D average pooling (floor mode).

    ``out = (sum over the kernel taps of the zero-padded input) / D`` with
    ``D = kH * kW`` if ``count_include_pad`` else the number of in-bounds taps
    of each window.

    Parameters
    ----------
    x : ndarray, float64, shape (N, C, H, W)
    kernel : tuple of int
        ``(kH, kW)``.
    stride : tuple of int
        ``(sh, sw)``.
    padding : tuple of int
        ``(top, bottom, left, right)``.
    count_include_pad : bool

    Returns
    -------
    out : ndarray, float64, shape (N, C, OH, OW)
        ``OH = (H + top + bottom - kH) // sh + 1``, likewise ``OW``.

    Examples
    --------
    The corner window of a 2x2 kernel with one padded row and column holds
    one real cell: 1 / 4 with ``count_include_pad``, 1 / 1 without.

    >>> import numpy as np
    >>> x = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
    >>> avgpool2d_forward_numpy(x, (2, 2), (1, 1), (1, 0, 1, 0), True)[0, 0].tolist()
    [[0.25, 0.75], [1.0, 2.5]]
    >>> avgpool2d_forward_numpy(x, (2, 2), (1, 1), (1, 0, 1, 0), False)[0, 0].tolist()
    [[1.0, 1.5], [2.0, 2.5]]
    """
    _plain_check_geometry(stride, padding, (1, 1))
    x = np.asarray(x, dtype=np.float64)
    N, C, H, W = x.shape
    kH, kW = kernel
    top, bottom, left, right = padding
    OH = _plain_out_size(H + top + bottom, kH, 1, stride[0])
    OW = _plain_out_size(W + left + right, kW, 1, stride[1])
    if OH == 0 or OW == 0:
        return np.empty((N, C, OH, OW))
    xp = _pad(x, padding, 0.0)
    acc = np.zeros((N, C, OH, OW))
    for kh in range(kH):
        for kw in range(kW):
            rs, cs = _tap_slices(kh, kw, 1, 1, stride[0], stride[1], OH, OW)
            acc += xp[:, :, rs, cs]
    div = _avg_divisor(H, W, kernel, stride, padding, count_include_pad, OH, OW)
    with np.errstate(invalid="ignore", divide="ignore"):
        return acc / div


def avgpool2d_vjp_numpy(g, input_hw, kernel, stride, padding, count_include_pad):
    """Vector-Jacobian product of :func:`avgpool2d_forward_numpy` with respect to its input.

    ``g / D`` added, tap by tap, into a zero-padded plane whose padding is then
    cropped.

    Parameters
    ----------
    g : ndarray, float64, shape (N, C, OH, OW)
    input_hw : tuple of int
        ``(H, W)``.
    kernel, stride, padding, count_include_pad
        As in :func:`avgpool2d_forward_numpy`.

    Returns
    -------
    grad_x : ndarray, float64, shape (N, C, H, W)
    """
    _plain_check_geometry(stride, padding, (1, 1))
    g = np.asarray(g, dtype=np.float64)
    N, C, OH, OW = g.shape
    H, W = input_hw
    kH, kW = kernel
    top, bottom, left, right = padding
    Hp, Wp = H + top + bottom, W + left + right
    if OH != _plain_out_size(Hp, kH, 1, stride[0]) or OW != _plain_out_size(Wp, kW, 1, stride[1]):
        raise ValueError("avgpool2d_vjp: g has the wrong spatial shape")
    if OH == 0 or OW == 0:
        return np.zeros((N, C, H, W))
    div = _avg_divisor(H, W, kernel, stride, padding, count_include_pad, OH, OW)
    with np.errstate(invalid="ignore", divide="ignore"):
        gd = g / div
    gxp = np.zeros((N, C, Hp, Wp))
    for kh in range(kH):
        for kw in range(kW):
            rs, cs = _tap_slices(kh, kw, 1, 1, stride[0], stride[1], OH, OW)
            gxp[:, :, rs, cs] += gd
    return np.ascontiguousarray(gxp[:, :, top : top + H, left : left + W])


# --------------------------------------------------------------------------
# max pooling
# --------------------------------------------------------------------------


def maxpool2d_forward_numpy(x, kernel, stride, padding):
    """2-D max pooling (floor mode) with the flat index ``ih * W + iw`` of each maximum.

    Taps are visited in row-major order (``k_h`` outer, ``k_w`` inner); a tap
    replaces the running maximum of its window only if it is a real cell and
    strictly greater (or the first NaN), so among equal maxima the first in
    row-major window order wins and padding cells never win.

    Parameters
    ----------
    x : ndarray, float64, shape (N, C, H, W)
    kernel : tuple of int
        ``(kH, kW)``.
    stride : tuple of int
        ``(sh, sw)``.
    padding : tuple of int
        ``(top, bottom, left, right)``; every window must contain a real cell.

    Returns
    -------
    out : ndarray, float64, shape (N, C, OH, OW)
    argmax : ndarray, int64, shape (N, C, OH, OW)

    Raises
    ------
    ValueError
        If a window lies entirely in the padding.

    Examples
    --------
    All cells negative, kernel 2x2 with one row and one column of padding
    before the input: the padding (``-inf``) never wins, each window's best
    real cell does.

    >>> import numpy as np
    >>> x = np.array([[-5.0, -3.0], [-2.0, -6.0]]).reshape(1, 1, 2, 2)
    >>> out, argmax = maxpool2d_forward(x, (2, 2), (1, 1), (1, 0, 1, 0))
    >>> out[0, 0].tolist(), argmax[0, 0].tolist()
    ([[-5.0, -3.0], [-2.0, -2.0]], [[0, 1], [2, 2]])
    """
    _plain_check_geometry(stride, padding, (1, 1))
    x = np.asarray(x, dtype=np.float64)
    N, C, H, W = x.shape
    kH, kW = kernel
    sh, sw = stride
    top, bottom, left, right = padding
    OH = _plain_out_size(H + top + bottom, kH, 1, sh)
    OW = _plain_out_size(W + left + right, kW, 1, sw)
    if OH == 0 or OW == 0:
        return np.empty((N, C, OH, OW)), np.empty((N, C, OH, OW), dtype=np.int64)
    xp = _pad(x, padding, -np.inf)
    # which padded cells are real, and their flat index in the unpadded plane
    real = _pad(np.ones((1, 1, H, W), dtype=bool), padding, False)[0, 0]
    flat = _pad(np.arange(H * W, dtype=np.int64).reshape(1, 1, H, W), padding, -1)[0, 0]
    best = np.full((N, C, OH, OW), -np.inf)
    idx = np.full((OH, OW), -1, dtype=np.int64)
    argmax = np.broadcast_to(idx, (N, C, OH, OW)).copy()
    found = np.zeros((OH, OW), dtype=bool)
    for kh in range(kH):
        for kw in range(kW):
            rs, cs = _tap_slices(kh, kw, 1, 1, sh, sw, OH, OW)
            v = xp[:, :, rs, cs]
            r = real[rs, cs]
            take = r & (~found | (v > best) | (np.isnan(v) & ~np.isnan(best)))
            best = np.where(take, v, best)
            argmax = np.where(take, flat[rs, cs], argmax)
            found |= r
    if not found.all():
        raise ValueError("maxpool2d_forward: a window lies entirely in the padding")
    return best, argmax.astype(np.int64, copy=False)


def maxpool2d_vjp_numpy(g, argmax, input_hw):
    """Vector-Jacobian product of :func:`maxpool2d_forward_numpy` with respect to its input.

    ``grad_x[n, c].flat[argmax[n, c, oh, ow]] += g[n, c, oh, ow]`` for every
    output, in row-major output order (a weighted ``bincount``).

    Parameters
    ----------
    g : ndarray, float64, shape (N, C, OH, OW)
    argmax : ndarray, int64, shape (N, C, OH, OW)
    input_hw : tuple of int
        ``(H, W)``.

    Returns
    -------
    grad_x : ndarray, float64, shape (N, C, H, W)
    """
    g = np.asarray(g, dtype=np.float64)
    argmax = np.asarray(argmax)
    if argmax.shape != g.shape:
        raise ValueError("maxpool2d_vjp: argmax and g differ in shape")
    N, C, OH, OW = g.shape
    H, W = input_hw
    HW = H * W
    if argmax.size and (argmax.min() < 0 or argmax.max() >= HW):
        raise ValueError("maxpool2d_vjp: argmax index out of range")
    plane = (np.arange(N * C, dtype=np.int64) * HW).reshape(N, C, 1, 1)
    target = (argmax.astype(np.int64) + plane).ravel()
    grad = np.bincount(target, weights=g.ravel(), minlength=N * C * HW)
    return grad.reshape(N, C, H, W)

# Kernels --------------------------------------------------------------------------------------

@jit
def _window_range(o, s, pad, k, size):
    """In-bounds taps ``[lo, hi)`` of window ``o``: taps t with 0 <= o*s - pad + t < size."""
    start = o * s - pad
    lo = max(0, -start)
    hi = min(k, size - start)
    return start, lo, hi


@accelerates(avgpool2d_forward_numpy, rtol=1e-13,
             reason="the definition adds whole tap slices and divides, the kernel window by window")
@jit_parallel
def avgpool2d_forward(x, kernel, stride, padding, count_include_pad):
    """2-D average pooling (floor mode).

    .. math::

        \\mathrm{out}[n, c, o_h, o_w] = \\frac{1}{D}
            \\sum_{(k_h, k_w) \\in \\mathrm{in}} x[n, c,\\; o_h s_h - top + k_h,\\;
            o_w s_w - left + k_w]

    where the sum runs over the window taps that fall inside the unpadded
    input and the divisor is ``D = kH * kW`` if ``count_include_pad`` else the
    number of those in-bounds taps.

    Parameters
    ----------
    x : ndarray, float64, shape (N, C, H, W)
    kernel : tuple of int
        ``(kH, kW)``.
    stride : tuple of int
        ``(sh, sw)``.
    padding : tuple of int
        ``(top, bottom, left, right)``.
    count_include_pad : bool
        Whether padding cells count in the divisor.

    Returns
    -------
    out : ndarray, float64, shape (N, C, OH, OW)
        ``OH = (H + top + bottom - kH) // sh + 1``, likewise ``OW``.

    Notes
    -----
    The window sum is accumulated from 0.0 in row-major tap order (``k_h``
    outer, ``k_w`` inner), then divided once by ``D``. A window with no
    in-bounds tap and ``count_include_pad=False`` gives ``0/0 = nan``.
    """
    _check_geometry(stride, padding, (1, 1))
    N, C, H, W = x.shape
    kH, kW = kernel
    sh, sw = stride
    top, bottom, left, right = padding
    OH = _out_size(H + top + bottom, kH, 1, sh)
    OW = _out_size(W + left + right, kW, 1, sw)
    out = np.empty((N, C, OH, OW))
    for n in prange(N):
        for c in range(C):
            xv = x[n, c]
            for oh in range(OH):
                h0, kh_lo, kh_hi = _window_range(oh, sh, top, kH, H)
                for ow in range(OW):
                    w0, kw_lo, kw_hi = _window_range(ow, sw, left, kW, W)
                    acc = 0.0
                    for kh in range(kh_lo, kh_hi):
                        for kw in range(kw_lo, kw_hi):
                            acc += xv[h0 + kh, w0 + kw]
                    if count_include_pad:
                        div = kH * kW
                    else:
                        div = max(0, kh_hi - kh_lo) * max(0, kw_hi - kw_lo)
                    out[n, c, oh, ow] = acc / div
    return out


@accelerates(avgpool2d_vjp_numpy, rtol=1e-13,
             reason="the definition adds g / D tap slice by tap slice, in another order")
@jit_parallel
def avgpool2d_vjp(g, input_hw, kernel, stride, padding, count_include_pad):
    """Vector-Jacobian product of :func:`avgpool2d_forward` with respect to its input.

    .. math::

        \\bar x[n, c, h, w] = \\sum_{(o_h, o_w):\\ (h, w) \\in \\mathrm{window}(o_h, o_w)}
            \\frac{g[n, c, o_h, o_w]}{D(o_h, o_w)}

    with the divisor ``D`` of the forward pass; the adjoint of the (linear)
    forward map.

    Parameters
    ----------
    g : ndarray, float64, shape (N, C, OH, OW)
        Cotangent of the pooling output.
    input_hw : tuple of int
        ``(H, W)`` of the forward input.
    kernel, stride, padding, count_include_pad
        As in :func:`avgpool2d_forward`.

    Returns
    -------
    grad_x : ndarray, float64, shape (N, C, H, W)

    Notes
    -----
    Contributions ``g / D`` are added in row-major order of the outputs, and
    for each output in row-major tap order.
    """
    _check_geometry(stride, padding, (1, 1))
    N, C, OH, OW = g.shape
    H, W = input_hw
    kH, kW = kernel
    sh, sw = stride
    top, bottom, left, right = padding
    if OH != _out_size(H + top + bottom, kH, 1, sh) or OW != _out_size(
        W + left + right, kW, 1, sw
    ):
        raise ValueError("avgpool2d_vjp: g has the wrong spatial shape")
    grad_x = np.zeros((N, C, H, W))
    for n in prange(N):
        for c in range(C):
            gx = grad_x[n, c]
            for oh in range(OH):
                h0, kh_lo, kh_hi = _window_range(oh, sh, top, kH, H)
                for ow in range(OW):
                    w0, kw_lo, kw_hi = _window_range(ow, sw, left, kW, W)
                    if count_include_pad:
                        div = kH * kW
                    else:
                        div = max(0, kh_hi - kh_lo) * max(0, kw_hi - kw_lo)
                    v = g[n, c, oh, ow] / div
                    for kh in range(kh_lo, kh_hi):
                        for kw in range(kw_lo, kw_hi):
                            gx[h0 + kh, w0 + kw] += v
    return grad_x


# --------------------------------------------------------------------------
# max pooling
# --------------------------------------------------------------------------


@jit
def _indices_in_range(idx, size):
    """Whether every entry of the 4-D integer array ``idx`` lies in ``[0, size)``."""
    N, C, OH, OW = idx.shape
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                for ow in range(OW):
                    a = idx[n, c, oh, ow]
                    if a < 0 or a >= size:
                        return False
    return True


@accelerates(maxpool2d_forward_numpy)
@jit_parallel
def maxpool2d_forward(x, kernel, stride, padding):
    """2-D max pooling (floor mode, no dilation) with the index of each maximum.

    .. math::

        \\mathrm{out}[n, c, o_h, o_w] = \\max_{(k_h, k_w) \\in \\mathrm{in}}
            x[n, c,\\; o_h s_h - top + k_h,\\; o_w s_w - left + k_w]

    over the taps of the window that fall inside the unpadded input: padding
    cells act as ``-inf`` and never win, not even against ``-inf``.

    Tie rule: taps are scanned in row-major order (``k_h`` outer, ``k_w``
    inner) and the running maximum is replaced only by a strictly greater
    value, so among equal maxima the *first* in row-major window order wins
    (as PyTorch). NaN propagates: the first NaN in scan order wins its
    window.

    Parameters
    ----------
    x : ndarray, float64, shape (N, C, H, W)
    kernel : tuple of int
        ``(kH, kW)``.
    stride : tuple of int
        ``(sh, sw)``.
    padding : tuple of int
        ``(top, bottom, left, right)``. Every window must contain at least
        one real cell (guaranteed when each side is at most half the kernel).

    Returns
    -------
    out : ndarray, float64, shape (N, C, OH, OW)
        ``OH = (H + top + bottom - kH) // sh + 1``, likewise ``OW``.
    argmax : ndarray, int64, shape (N, C, OH, OW)
        Flat index ``ih * W + iw`` of the winning cell in the unpadded
        ``(H, W)`` plane of the same sample and channel.

    Raises
    ------
    ValueError
        If a window lies entirely in the padding.

    Examples
    --------
    Two 2x2 windows with tied maxima; each takes its first 7 in row-major
    order, cell (0, 1), flat index 1:

    >>> import numpy as np
    >>> x = np.array([[0.0, 7.0, 7.0], [7.0, 7.0, 0.0]]).reshape(1, 1, 2, 3)
    >>> out, argmax = maxpool2d_forward(x, (2, 2), (1, 1), (0, 0, 0, 0))
    >>> out.ravel().tolist(), argmax.ravel().tolist()
    ([7.0, 7.0], [1, 1])
    """
    _check_geometry(stride, padding, (1, 1))
    N, C, H, W = x.shape
    kH, kW = kernel
    sh, sw = stride
    top, bottom, left, right = padding
    OH = _out_size(H + top + bottom, kH, 1, sh)
    OW = _out_size(W + left + right, kW, 1, sw)
    # (raising inside the prange loop would make numba run it serially)
    for oh in range(OH):
        h0, kh_lo, kh_hi = _window_range(oh, sh, top, kH, H)
        if kh_lo >= kh_hi:
            raise ValueError("maxpool2d_forward: a window lies entirely in the padding")
    for ow in range(OW):
        w0, kw_lo, kw_hi = _window_range(ow, sw, left, kW, W)
        if kw_lo >= kw_hi:
            raise ValueError("maxpool2d_forward: a window lies entirely in the padding")
    out = np.empty((N, C, OH, OW))
    argmax = np.empty((N, C, OH, OW), dtype=np.int64)
    for n in prange(N):
        for c in range(C):
            xv = x[n, c]
            for oh in range(OH):
                h0, kh_lo, kh_hi = _window_range(oh, sh, top, kH, H)
                for ow in range(OW):
                    w0, kw_lo, kw_hi = _window_range(ow, sw, left, kW, W)
                    best_i = h0 + kh_lo
                    best_j = w0 + kw_lo
                    best = xv[best_i, best_j]
                    for kh in range(kh_lo, kh_hi):
                        i = h0 + kh
                        for kw in range(kw_lo, kw_hi):
                            v = xv[i, w0 + kw]
                            # strictly greater (first maximum wins), or the first NaN
                            if v > best or (v != v and best == best):
                                best = v
                                best_i = i
                                best_j = w0 + kw
                    out[n, c, oh, ow] = best
                    argmax[n, c, oh, ow] = best_i * W + best_j
    return out, argmax


@accelerates(maxpool2d_vjp_numpy, rtol=1e-13,
             reason="the definition adds by a weighted bincount, in another order where windows overlap")
@jit_parallel
def maxpool2d_vjp(g, argmax, input_hw):
    """Vector-Jacobian product of :func:`maxpool2d_forward` with respect to its input.

    .. math::

        \\bar x[n, c, h, w] = \\sum_{(o_h, o_w):\\ \\mathrm{argmax}[n, c, o_h, o_w] = h W + w}
            g[n, c, o_h, o_w]

    i.e. ``g`` scattered (added) into the winning cells; windows that overlap
    and share a winner accumulate. At fixed ``argmax`` this is the adjoint of
    the linear map ``x -> x[n, c].flat[argmax[n, c]]``.

    Parameters
    ----------
    g : ndarray, float64, shape (N, C, OH, OW)
        Cotangent of the pooling output.
    argmax : ndarray, int64, shape (N, C, OH, OW)
        Second output of :func:`maxpool2d_forward`; values in ``[0, H*W)``.
    input_hw : tuple of int
        ``(H, W)`` of the forward input.

    Returns
    -------
    grad_x : ndarray, float64, shape (N, C, H, W)

    Notes
    -----
    Contributions are added in row-major order of the outputs.

    Raises
    ------
    ValueError
        If ``argmax`` and ``g`` differ in shape or an index is out of range.
    """
    N, C, OH, OW = g.shape
    H, W = input_hw
    if argmax.shape != g.shape:
        raise ValueError("maxpool2d_vjp: argmax and g differ in shape")
    if not _indices_in_range(argmax, H * W):
        raise ValueError("maxpool2d_vjp: argmax index out of range")
    grad_x = np.zeros((N, C, H, W))
    for n in prange(N):
        for c in range(C):
            gx = grad_x[n, c]
            for oh in range(OH):
                for ow in range(OW):
                    a = argmax[n, c, oh, ow]
                    gx[a // W, a % W] += g[n, c, oh, ow]
    return grad_x
