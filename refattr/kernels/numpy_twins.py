"""Plain-NumPy twins of the compiled kernels in :mod:`refattr.kernels.jitted`.

Same names, signatures, shapes and semantics as the numba kernels (see that
module for the conventions), written in a different way so that the two
implementations check each other: the convolutions by im2col (one strided
slice of the padded input per kernel tap) and a batched matrix product, the
poolings by loops over the kernel taps with whole-array slicing.

They agree with the numba kernels to rounding (the order of the additions
differs), and exactly for the ``argmax`` of max pooling. They are used by the
tests and serve as the fallback wherever numba is not wanted
(``NUMBA_DISABLE_JIT=1`` runs).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "conv2d_forward",
    "conv2d_input_vjp",
    "conv2d_weight_vjp",
    "avgpool2d_forward",
    "avgpool2d_vjp",
    "maxpool2d_forward",
    "maxpool2d_vjp",
]


def _check_geometry(stride, padding, dilation) -> None:
    if min(stride) < 1:
        raise ValueError("stride must be positive")
    if min(dilation) < 1:
        raise ValueError("dilation must be positive")
    if min(padding) < 0:
        raise ValueError("padding must be non-negative")


def _out_size(padded: int, k: int, d: int, s: int) -> int:
    """``(padded - d*(k-1) - 1) // s + 1``, at least 0."""
    return max(0, (padded - d * (k - 1) - 1) // s + 1)


def _pad(x: np.ndarray, padding, value: float) -> np.ndarray:
    top, bottom, left, right = padding
    return np.pad(
        x, ((0, 0), (0, 0), (top, bottom), (left, right)), mode="constant", constant_values=value
    )


def _tap_slices(kh, kw, dh, dw, sh, sw, OH, OW):
    """Slices of the padded plane read by kernel tap (kh, kw) for all (OH, OW) outputs."""
    r0 = kh * dh
    c0 = kw * dw
    return (
        slice(r0, r0 + sh * (OH - 1) + 1, sh),
        slice(c0, c0 + sw * (OW - 1) + 1, sw),
    )


def _im2col(xp, kernel_hw, stride, dilation, OH, OW):
    """Columns ``cols[n, c, kh, kw, oh, ow] = xp[n, c, oh*sh + kh*dh, ow*sw + kw*dw]``."""
    N, C = xp.shape[:2]
    kH, kW = kernel_hw
    sh, sw = stride
    dh, dw = dilation
    cols = np.empty((N, C, kH, kW, OH, OW))
    for kh in range(kH):
        for kw in range(kW):
            rs, cs = _tap_slices(kh, kw, dh, dw, sh, sw, OH, OW)
            cols[:, :, kh, kw] = xp[:, :, rs, cs]
    return cols


# --------------------------------------------------------------------------
# convolution
# --------------------------------------------------------------------------


def conv2d_forward(x, weight, stride, padding, dilation, groups, bias=None):
    """2-D cross-correlation with zero padding, strides, dilation and groups, plus an optional
    bias per output channel (added to each finished sum).

    .. math::

        \\mathrm{out}[n, c_o, o_h, o_w] = \\sum_{c, k_h, k_w} w[c_o, c, k_h, k_w]\\,
            x_p[n,\\; g C_{in}/G + c,\\; o_h s_h + k_h d_h,\\; o_w s_w + k_w d_w]

    computed as ``W_g @ cols_g`` per sample and group, with
    ``W_g`` of shape (C_out/G, C_in/G * kH * kW) and the im2col matrix
    ``cols_g`` of shape (C_in/G * kH * kW, OH * OW).

    Parameters
    ----------
    x : ndarray, float64, shape (N, C_in, H, W)
    weight : ndarray, float64, shape (C_out, C_in // groups, kH, kW)
    stride : tuple of int
        ``(sh, sw)``.
    padding : tuple of int
        ``(top, bottom, left, right)``.
    dilation : tuple of int
        ``(dh, dw)``.
    groups : int
    bias : ndarray, float64, shape (C_out,), or None

    Returns
    -------
    out : ndarray, float64, shape (N, C_out, OH, OW)
        ``OH = (H + top + bottom - dh*(kH-1) - 1) // sh + 1``, likewise ``OW``.
    """
    _check_geometry(stride, padding, dilation)
    x = np.asarray(x, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    N, C_in, H, W = x.shape
    C_out, Cig, kH, kW = weight.shape
    if groups < 1 or C_in != Cig * groups or C_out % groups != 0:
        raise ValueError("conv2d_forward: channels do not match groups")
    if bias is not None and bias.shape[0] != C_out:
        raise ValueError("conv2d_forward: bias does not have one entry per output channel")
    top, bottom, left, right = padding
    OH = _out_size(H + top + bottom, kH, dilation[0], stride[0])
    OW = _out_size(W + left + right, kW, dilation[1], stride[1])
    if OH == 0 or OW == 0:
        return np.empty((N, C_out, OH, OW))
    K = Cig * kH * kW
    cols = _im2col(_pad(x, padding, 0.0), (kH, kW), stride, dilation, OH, OW)
    cols = cols.reshape(N, groups, K, OH * OW)
    wmat = weight.reshape(groups, C_out // groups, K)
    out = np.matmul(wmat, cols).reshape(N, C_out, OH, OW)  # from (N, G, Cog, OH*OW)
    if bias is not None:
        out += np.asarray(bias, dtype=np.float64)[:, None, None]
    return out


def conv2d_input_vjp(g, weight, input_hw, stride, padding, dilation, groups):
    """Vector-Jacobian product of :func:`conv2d_forward` with respect to its input.

    ``grad_x = col2im(W_g^T @ g_g)``: the column gradient of shape
    (C_in/G * kH * kW, OH * OW) per sample and group is added back, tap by
    tap, into a zero-padded plane whose padding is then cropped.

    Parameters
    ----------
    g : ndarray, float64, shape (N, C_out, OH, OW)
    weight : ndarray, float64, shape (C_out, C_in // groups, kH, kW)
    input_hw : tuple of int
        ``(H, W)``.
    stride, padding, dilation, groups
        As in :func:`conv2d_forward`.

    Returns
    -------
    grad_x : ndarray, float64, shape (N, C_in, H, W)
    """
    _check_geometry(stride, padding, dilation)
    g = np.asarray(g, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    N, C_out, OH, OW = g.shape
    C_out_w, Cig, kH, kW = weight.shape
    H, W = input_hw
    if groups < 1 or C_out != C_out_w or C_out % groups != 0:
        raise ValueError("conv2d_input_vjp: channels do not match groups")
    top, bottom, left, right = padding
    sh, sw = stride
    dh, dw = dilation
    Hp, Wp = H + top + bottom, W + left + right
    if OH != _out_size(Hp, kH, dh, sh) or OW != _out_size(Wp, kW, dw, sw):
        raise ValueError("conv2d_input_vjp: g has the wrong spatial shape")
    C_in = Cig * groups
    if OH == 0 or OW == 0:
        return np.zeros((N, C_in, H, W))
    K = Cig * kH * kW
    wmat_t = weight.reshape(groups, C_out // groups, K).transpose(0, 2, 1)
    gcols = np.matmul(wmat_t, g.reshape(N, groups, C_out // groups, OH * OW))
    gcols = gcols.reshape(N, C_in, kH, kW, OH, OW)
    gxp = np.zeros((N, C_in, Hp, Wp))
    for kh in range(kH):
        for kw in range(kW):
            rs, cs = _tap_slices(kh, kw, dh, dw, sh, sw, OH, OW)
            gxp[:, :, rs, cs] += gcols[:, :, kh, kw]
    return np.ascontiguousarray(gxp[:, :, top : top + H, left : left + W])


def conv2d_weight_vjp(x, g, kernel_hw, stride, padding, dilation, groups):
    """Vector-Jacobian product of :func:`conv2d_forward` with respect to its weight.

    ``grad_W_g = sum_n g_g[n] @ cols_g[n]^T``, computed as one matrix product
    per group over the concatenated batch.

    Parameters
    ----------
    x : ndarray, float64, shape (N, C_in, H, W)
    g : ndarray, float64, shape (N, C_out, OH, OW)
    kernel_hw : tuple of int
        ``(kH, kW)``.
    stride, padding, dilation, groups
        As in :func:`conv2d_forward`.

    Returns
    -------
    grad_w : ndarray, float64, shape (C_out, C_in // groups, kH, kW)
    """
    _check_geometry(stride, padding, dilation)
    x = np.asarray(x, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    N, C_in, H, W = x.shape
    Ng, C_out, OH, OW = g.shape
    kH, kW = kernel_hw
    if Ng != N:
        raise ValueError("conv2d_weight_vjp: batch sizes of x and g differ")
    if groups < 1 or C_in % groups != 0 or C_out % groups != 0:
        raise ValueError("conv2d_weight_vjp: channels do not match groups")
    top, bottom, left, right = padding
    if OH != _out_size(H + top + bottom, kH, dilation[0], stride[0]) or OW != _out_size(
        W + left + right, kW, dilation[1], stride[1]
    ):
        raise ValueError("conv2d_weight_vjp: g has the wrong spatial shape")
    Cig, Cog = C_in // groups, C_out // groups
    K = Cig * kH * kW
    if OH == 0 or OW == 0 or N == 0:
        return np.zeros((C_out, Cig, kH, kW))
    cols = _im2col(_pad(x, padding, 0.0), (kH, kW), stride, dilation, OH, OW)
    # (G, K, N * P): columns of all samples side by side
    cols = cols.reshape(N, groups, K, OH * OW).transpose(1, 2, 0, 3).reshape(groups, K, N * OH * OW)
    gm = g.reshape(N, groups, Cog, OH * OW).transpose(1, 2, 0, 3).reshape(groups, Cog, N * OH * OW)
    grad_w = np.matmul(gm, cols.transpose(0, 2, 1))  # (G, Cog, K)
    return np.ascontiguousarray(grad_w.reshape(C_out, Cig, kH, kW))


# --------------------------------------------------------------------------
# average pooling
# --------------------------------------------------------------------------


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


def avgpool2d_forward(x, kernel, stride, padding, count_include_pad):
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
    >>> avgpool2d_forward(x, (2, 2), (1, 1), (1, 0, 1, 0), True)[0, 0].tolist()
    [[0.25, 0.75], [1.0, 2.5]]
    >>> avgpool2d_forward(x, (2, 2), (1, 1), (1, 0, 1, 0), False)[0, 0].tolist()
    [[1.0, 1.5], [2.0, 2.5]]
    """
    _check_geometry(stride, padding, (1, 1))
    x = np.asarray(x, dtype=np.float64)
    N, C, H, W = x.shape
    kH, kW = kernel
    top, bottom, left, right = padding
    OH = _out_size(H + top + bottom, kH, 1, stride[0])
    OW = _out_size(W + left + right, kW, 1, stride[1])
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


def avgpool2d_vjp(g, input_hw, kernel, stride, padding, count_include_pad):
    """Vector-Jacobian product of :func:`avgpool2d_forward` with respect to its input.

    ``g / D`` added, tap by tap, into a zero-padded plane whose padding is then
    cropped.

    Parameters
    ----------
    g : ndarray, float64, shape (N, C, OH, OW)
    input_hw : tuple of int
        ``(H, W)``.
    kernel, stride, padding, count_include_pad
        As in :func:`avgpool2d_forward`.

    Returns
    -------
    grad_x : ndarray, float64, shape (N, C, H, W)
    """
    _check_geometry(stride, padding, (1, 1))
    g = np.asarray(g, dtype=np.float64)
    N, C, OH, OW = g.shape
    H, W = input_hw
    kH, kW = kernel
    top, bottom, left, right = padding
    Hp, Wp = H + top + bottom, W + left + right
    if OH != _out_size(Hp, kH, 1, stride[0]) or OW != _out_size(Wp, kW, 1, stride[1]):
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


def maxpool2d_forward(x, kernel, stride, padding):
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
    _check_geometry(stride, padding, (1, 1))
    x = np.asarray(x, dtype=np.float64)
    N, C, H, W = x.shape
    kH, kW = kernel
    sh, sw = stride
    top, bottom, left, right = padding
    OH = _out_size(H + top + bottom, kH, 1, sh)
    OW = _out_size(W + left + right, kW, 1, sw)
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


def maxpool2d_vjp(g, argmax, input_hw):
    """Vector-Jacobian product of :func:`maxpool2d_forward` with respect to its input.

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
