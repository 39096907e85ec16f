"""2-D convolution (cross-correlation) and its two VJPs, float64, NCHW: definitions and kernels.

Each kernel follows the NumPy definition it accelerates (``conv2d_forward_numpy`` etc.: im2col,
one strided slice of the padded input per kernel tap, and a batched matrix product) and is
registered against it (:func:`refattr.kernels.registry.accelerates`); the public name runs the
kernel, or the definition under ``REFATTR_KERNELS=numpy``. They agree to rounding: the order of
the additions differs.

Conventions shared by all kernels:

* ``stride = (sh, sw)``, ``dilation = (dh, dw)``, ``kernel_hw = (kH, kW)`` and
  ``input_hw = (H, W)`` are tuples of two Python ints;
  ``padding = (top, bottom, left, right)`` is a tuple of four non-negative Python ints.
* A padded input is ``xp[n, c, r, s] = x[n, c, r - top, s - left]`` where that index lies in the
  input plane, else 0.
* ``OH = (H + top + bottom - dh * (kH - 1) - 1) // sh + 1``, likewise ``OW``; a size that would be
  negative is clamped to 0 (an empty output). Every function returns new arrays.

Implementation notes (the kernels)
----------------------------------
The outer loop of every kernel is a ``prange`` over the batch axis (see
:mod:`refattr.kernels._jit`): each iteration writes only ``out[n]`` (or its own per-sample
scratch), so results are bitwise identical for any number of threads.

The kernels work on a *phase-split* copy of the zero-padded input of one sample: with strides
``(sh, sw)``, padded pixel ``(r, s)`` is stored in plane ``(r % sh) * sw + s % sw`` at flat
position ``(r // sh) * Wj + s // sw``, where ``Wj = ceil(Wp / sw)``. In that layout the input pixel
read by output ``(oh, ow)`` through kernel tap ``(kh, kw)`` sits at flat position
``oh * Wj + ow + shift(kh, kw)`` of one plane, so for a fixed tap the whole output plane is a single
unit-stride loop with the weight held in a register, whatever the stride and dilation, and with no
bounds tests inside it. Up to nine consecutive taps share one such loop, ``((acc + w0 s0) + w1 s1)
+ ...``: the same products added in the same order as one loop per tap (no fused multiply-add,
which would round differently).
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

from ._geometry import jit_ceil_div as _ceil_div

__all__ = ["conv2d_forward", "conv2d_input_vjp", "conv2d_weight_vjp",
           "conv2d_forward_numpy", "conv2d_input_vjp_numpy", "conv2d_weight_vjp_numpy"]


# NumPy definitions ---------------------------------------------------------------------------

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


def conv2d_forward_numpy(x, weight, stride, padding, dilation, groups, bias=None):
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
    _plain_check_geometry(stride, padding, dilation)
    x = np.asarray(x, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    N, C_in, H, W = x.shape
    C_out, Cig, kH, kW = weight.shape
    if groups < 1 or C_in != Cig * groups or C_out % groups != 0:
        raise ValueError("conv2d_forward: channels do not match groups")
    if bias is not None and bias.shape[0] != C_out:
        raise ValueError("conv2d_forward: bias does not have one entry per output channel")
    top, bottom, left, right = padding
    OH = _plain_out_size(H + top + bottom, kH, dilation[0], stride[0])
    OW = _plain_out_size(W + left + right, kW, dilation[1], stride[1])
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


def conv2d_input_vjp_numpy(g, weight, input_hw, stride, padding, dilation, groups):
    """Vector-Jacobian product of :func:`conv2d_forward_numpy` with respect to its input.

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
        As in :func:`conv2d_forward_numpy`.

    Returns
    -------
    grad_x : ndarray, float64, shape (N, C_in, H, W)
    """
    _plain_check_geometry(stride, padding, dilation)
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
    if OH != _plain_out_size(Hp, kH, dh, sh) or OW != _plain_out_size(Wp, kW, dw, sw):
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


def conv2d_weight_vjp_numpy(x, g, kernel_hw, stride, padding, dilation, groups):
    """Vector-Jacobian product of :func:`conv2d_forward_numpy` with respect to its weight.

    ``grad_W_g = sum_n g_g[n] @ cols_g[n]^T``, computed as one matrix product
    per group over the concatenated batch.

    Parameters
    ----------
    x : ndarray, float64, shape (N, C_in, H, W)
    g : ndarray, float64, shape (N, C_out, OH, OW)
    kernel_hw : tuple of int
        ``(kH, kW)``.
    stride, padding, dilation, groups
        As in :func:`conv2d_forward_numpy`.

    Returns
    -------
    grad_w : ndarray, float64, shape (C_out, C_in // groups, kH, kW)
    """
    _plain_check_geometry(stride, padding, dilation)
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
    if OH != _plain_out_size(H + top + bottom, kH, dilation[0], stride[0]) or OW != _plain_out_size(
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


# Compiled helpers ----------------------------------------------------------------------------

@jit
def _phase_split(x_n, xs, top, left, sh, sw, Wj):
    """Scatter one sample ``x_n`` (C, H, W) into the zeroed phase-split buffer ``xs``.

    ``xs`` has shape (C, sh * sw, Hi * Wj); padded pixel (r, s) = (h + top,
    w + left) goes to ``xs[c, (r % sh) * sw + s % sw, (r // sh) * Wj + s // sw]``.
    Padding cells are left as they are in ``xs`` (zero).
    """
    C, H, W = x_n.shape
    for h in range(H):
        r = h + top
        plane0 = (r % sh) * sw
        row0 = (r // sh) * Wj
        for pw in range(sw):
            w0 = (pw - left) % sw  # first column w with (w + left) % sw == pw
            if w0 >= W:
                continue
            cnt = (W - 1 - w0) // sw + 1
            j0 = row0 + (w0 + left) // sw
            for c in range(C):
                dst = xs[c, plane0 + pw, j0 : j0 + cnt]
                src = x_n[c, h]
                for k in range(cnt):
                    dst[k] = src[w0 + k * sw]


@jit
def _phase_merge(xs, gx_n, top, left, sh, sw, Wj):
    """Inverse of :func:`_phase_split`: read the unpadded cells of ``xs`` into ``gx_n`` (C, H, W)."""
    C, H, W = gx_n.shape
    for h in range(H):
        r = h + top
        plane0 = (r % sh) * sw
        row0 = (r // sh) * Wj
        for pw in range(sw):
            w0 = (pw - left) % sw
            if w0 >= W:
                continue
            cnt = (W - 1 - w0) // sw + 1
            j0 = row0 + (w0 + left) // sw
            for c in range(C):
                src = xs[c, plane0 + pw, j0 : j0 + cnt]
                dst = gx_n[c, h]
                for k in range(cnt):
                    dst[w0 + k * sw] = src[k]


@jit
def _all_finite(a):
    """Whether no entry of the 4-D array ``a`` is inf or nan."""
    d0, d1, d2, d3 = a.shape
    for i in range(d0):
        for j in range(d1):
            for k in range(d2):
                for m in range(d3):
                    if not np.isfinite(a[i, j, k, m]):
                        return False
    return True


@jit
def _taps(kH, kW, dh, dw, sh, sw, Wj):
    """Phase-split plane and flat shift of every kernel tap, flattened row-major.

    Tap ``(kh, kw)`` reads padded pixel ``(oh*sh + a, ow*sw + b)`` with
    ``a = kh*dh``, ``b = kw*dw``: plane ``(a % sh) * sw + b % sw``, flat
    position ``oh*Wj + ow + (a // sh) * Wj + b // sw``.
    """
    planes = np.empty(kH * kW, dtype=np.int64)
    shifts = np.empty(kH * kW, dtype=np.int64)
    for kh in range(kH):
        a = kh * dh
        for kw in range(kW):
            b = kw * dw
            planes[kh * kW + kw] = (a % sh) * sw + b % sw
            shifts[kh * kW + kw] = (a // sh) * Wj + b // sw
    return planes, shifts


@jit
def _accumulate_streams(acc, src, offsets, weights):
    """acc[p] = (...((acc[p] + w_0 src[o_0 + p]) + w_1 src[o_1 + p]) + ...) + w_K-1 src[o_K-1 + p]
    for every p < acc.size, with (o_k, w_k) = (offsets[k], weights[k]) in order.

    The K products of each p are added one at a time in the order given, whatever the grouping
    below: streams are taken nine, then three, then one per sweep of ``acc``, so a 3x3 kernel
    reads and writes its accumulator once per input channel instead of nine times. Views that
    start at the offset keep every index a plain loop counter, which lets LLVM vectorise the
    sweeps (no fused multiply-add: ``fastmath`` is off, see :mod:`refattr.kernels._jit`).
    """
    L = acc.size
    K = offsets.size
    k = 0
    while k + 9 <= K:
        w0, w1, w2 = weights[k], weights[k + 1], weights[k + 2]
        w3, w4, w5 = weights[k + 3], weights[k + 4], weights[k + 5]
        w6, w7, w8 = weights[k + 6], weights[k + 7], weights[k + 8]
        s0 = src[offsets[k] : offsets[k] + L]
        s1 = src[offsets[k + 1] : offsets[k + 1] + L]
        s2 = src[offsets[k + 2] : offsets[k + 2] + L]
        s3 = src[offsets[k + 3] : offsets[k + 3] + L]
        s4 = src[offsets[k + 4] : offsets[k + 4] + L]
        s5 = src[offsets[k + 5] : offsets[k + 5] + L]
        s6 = src[offsets[k + 6] : offsets[k + 6] + L]
        s7 = src[offsets[k + 7] : offsets[k + 7] + L]
        s8 = src[offsets[k + 8] : offsets[k + 8] + L]
        for p in range(L):
            acc[p] = ((((((((acc[p] + w0 * s0[p]) + w1 * s1[p]) + w2 * s2[p]) + w3 * s3[p]) + w4 * s4[p])
                        + w5 * s5[p]) + w6 * s6[p]) + w7 * s7[p]) + w8 * s8[p]
        k += 9
    while k + 3 <= K:
        w0, w1, w2 = weights[k], weights[k + 1], weights[k + 2]
        s0 = src[offsets[k] : offsets[k] + L]
        s1 = src[offsets[k + 1] : offsets[k + 1] + L]
        s2 = src[offsets[k + 2] : offsets[k + 2] + L]
        for p in range(L):
            acc[p] = ((acc[p] + w0 * s0[p]) + w1 * s1[p]) + w2 * s2[p]
        k += 3
    while k < K:
        w0 = weights[k]
        s0 = src[offsets[k] : offsets[k] + L]
        for p in range(L):
            acc[p] += w0 * s0[p]
        k += 1



# Kernels --------------------------------------------------------------------------------------

@accelerates(conv2d_forward_numpy, rtol=1e-13,
             reason="the definition sums by im2col and a matrix product (BLAS), in another order")
@jit_parallel
def conv2d_forward(x, weight, stride, padding, dilation, groups, bias=None):
    """2-D cross-correlation with zero padding, strides, dilation and groups, plus an optional
    bias per output channel.

    .. math::

        \\mathrm{out}[n, c_o, o_h, o_w] = \\sum_{c=0}^{C_{in}/G - 1}
            \\sum_{k_h, k_w} w[c_o, c, k_h, k_w]\\,
            x_p[n,\\; g C_{in}/G + c,\\; o_h s_h + k_h d_h,\\; o_w s_w + k_w d_w]

    with group ``g = c_o // (C_out / G)`` and ``x_p`` the zero-padded input
    (``x_p[.., r, s] = x[.., r - top, s - left]`` inside the plane, else 0).
    Same semantics as PyTorch ``F.conv2d`` with the padding applied as given.

    Parameters
    ----------
    x : ndarray, float64, shape (N, C_in, H, W)
        Input, C-contiguous.
    weight : ndarray, float64, shape (C_out, C_in // groups, kH, kW)
        Filters.
    stride : tuple of int
        ``(sh, sw)``, positive.
    padding : tuple of int
        ``(top, bottom, left, right)``, non-negative.
    dilation : tuple of int
        ``(dh, dw)``, positive.
    groups : int
        Number of groups ``G``; divides ``C_in`` and ``C_out``.
    bias : ndarray, float64, shape (C_out,), or None
        Added to each finished sum, ``out = sum + bias[c_o]`` (one rounding, as adding it
        afterwards would give, but without another pass over ``out``).

    Returns
    -------
    out : ndarray, float64, shape (N, C_out, OH, OW)
        ``OH = (H + top + bottom - dh*(kH-1) - 1) // sh + 1``, likewise ``OW``.

    Notes
    -----
    Each output is accumulated from 0.0 over ``c`` (outer), ``k_h``, ``k_w``
    (inner), one product at a time (:func:`_accumulate_streams`), then the bias is added.
    Padding cells contribute ``w * 0.0`` (so an infinite weight over padding gives nan, as in
    im2col codes).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    >>> w = np.ones((1, 1, 2, 2))
    >>> conv2d_forward(x, w, (1, 1), (0, 0, 0, 0), (1, 1), 1)[0, 0].tolist()
    [[12.0, 16.0], [24.0, 28.0]]
    """
    _check_geometry(stride, padding, dilation)
    N, C_in, H, W = x.shape
    C_out, Cig, kH, kW = weight.shape
    if groups < 1 or C_in != Cig * groups or C_out % groups != 0:
        raise ValueError("conv2d_forward: channels do not match groups")
    if bias is not None and bias.shape[0] != C_out:
        raise ValueError("conv2d_forward: bias does not have one entry per output channel")
    sh, sw = stride
    top, bottom, left, right = padding
    dh, dw = dilation
    Hp = H + top + bottom
    Wp = W + left + right
    OH = _out_size(Hp, kH, dh, sh)
    OW = _out_size(Wp, kW, dw, sw)
    Cog = C_out // groups
    Hi = _ceil_div(Hp, sh)
    Wj = _ceil_div(Wp, sw)
    out = np.empty((N, C_out, OH, OW))
    if OH == 0 or OW == 0:
        return out
    # Output (oh, ow) is computed at flat position oh * Wj + ow of a row-padded
    # accumulator; the columns ow >= OW in it are scratch and are dropped.
    L = (OH - 1) * Wj + OW
    planes, shifts = _taps(kH, kW, dh, dw, sh, sw, Wj)
    if shifts[kH * kW - 1] + L > Hi * Wj:  # the largest shift; guaranteed by the geometry
        raise AssertionError("phase-split plane too small (internal error)")
    T = kH * kW
    P = sh * sw
    PL = Hi * Wj
    # Input (c, tap) of group grp is the stream starting at offsets[grp, c * T + tap] of the flat
    # phase-split sample; output co weighs the streams of its group with weight[co] flattened,
    # which is the same (c outer, tap row-major inner) order.
    offsets = np.empty((groups, Cig * T), dtype=np.int64)
    for grp in range(groups):
        for c in range(Cig):
            for t in range(T):
                offsets[grp, c * T + t] = ((grp * Cig + c) * P + planes[t]) * PL + shifts[t]
    w_flat = np.ascontiguousarray(weight).reshape(C_out, Cig * T)
    for n in prange(N):
        xs = np.zeros((C_in, P, PL))
        _phase_split(x[n], xs, top, left, sh, sw, Wj)
        xs_flat = xs.reshape(C_in * P * PL)
        acc = np.empty(L)
        for co in range(C_out):
            for p in range(L):
                acc[p] = 0.0
            _accumulate_streams(acc, xs_flat, offsets[co // Cog], w_flat[co])
            # Without a bias, + 0.0 leaves every sum as it is: a sum that starts at +0.0 is
            # never -0.0, and a nan keeps its payload.
            b = 0.0 if bias is None else bias[co]
            out_co = out[n, co]
            for oh in range(OH):
                row = out_co[oh]
                src = acc[oh * Wj : oh * Wj + OW]
                for ow in range(OW):
                    row[ow] = src[ow] + b
    return out


@accelerates(conv2d_input_vjp_numpy, rtol=1e-13,
             reason="the definition sums by a matrix product (BLAS) and col2im, in another order")
@jit_parallel
def conv2d_input_vjp(g, weight, input_hw, stride, padding, dilation, groups):
    """Vector-Jacobian product of :func:`conv2d_forward` with respect to its input.

    .. math::

        \\bar x[n, c_i, h, w] = \\sum_{c_o \\in \\mathrm{group}(c_i)}
            \\sum_{k_h, k_w,\\, o_h, o_w :\\;
                   o_h s_h + k_h d_h - top = h,\\;
                   o_w s_w + k_w d_w - left = w}
            w[c_o, c_i - g C_{in}/G, k_h, k_w]\\; g[n, c_o, o_h, o_w]

    i.e. the transposed convolution; the adjoint of ``x -> conv2d_forward(x, weight, ...)``:
    ``<conv2d_forward(x), g> == <x, conv2d_input_vjp(g)>``.

    Parameters
    ----------
    g : ndarray, float64, shape (N, C_out, OH, OW)
        Cotangent of the convolution output.
    weight : ndarray, float64, shape (C_out, C_in // groups, kH, kW)
        Filters.
    input_hw : tuple of int
        ``(H, W)``, the spatial size of the forward input (not recoverable
        from ``OH`` when ``sh > 1``).
    stride, padding, dilation, groups
        As in :func:`conv2d_forward`.

    Returns
    -------
    grad_x : ndarray, float64, shape (N, C_in, H, W)

    Notes
    -----
    Contributions to each input cell are added in the order ``c_o`` (outer),
    ``c``, ``k_h``, ``k_w`` (inner), starting from 0.0; input cells that no
    window reads get 0.
    """
    _check_geometry(stride, padding, dilation)
    N, C_out, OH, OW = g.shape
    C_out_w, Cig, kH, kW = weight.shape
    H, W = input_hw
    if groups < 1 or C_out != C_out_w or C_out % groups != 0:
        raise ValueError("conv2d_input_vjp: channels do not match groups")
    sh, sw = stride
    top, bottom, left, right = padding
    dh, dw = dilation
    Hp = H + top + bottom
    Wp = W + left + right
    if OH != _out_size(Hp, kH, dh, sh) or OW != _out_size(Wp, kW, dw, sw):
        raise ValueError("conv2d_input_vjp: g has the wrong spatial shape")
    C_in = Cig * groups
    Cog = C_out // groups
    Hi = _ceil_div(Hp, sh)
    Wj = _ceil_div(Wp, sw)
    grad_x = np.empty((N, C_in, H, W))
    if OH == 0 or OW == 0:
        grad_x[...] = 0.0
        return grad_x
    # Fast path (finite weights): g[n, co] is copied into rows of width Wj of
    # a zero buffer gext[co], so that tap t adds w_t * gext[co, q - shift_t + M]
    # to cell q of its plane for *every* q of the plane: M (the largest shift)
    # zeros in front and zeros beyond the last output make the terms of cells
    # that tap t does not reach w_t * 0.0, which leaves a sum that starts at
    # +0.0 bit for bit unchanged (x + 0.0 == x, +0.0 + -0.0 == +0.0). The
    # contributions to one plane of input channel c_i are then one sequence of
    # streams, c_o outer and the plane's taps row-major inner, accumulated by
    # _accumulate_streams in that order. With a non-finite weight
    # (inf * 0 = nan) the row-by-row loop is used, which touches only the
    # cells that real windows read.
    flat = _all_finite(weight)
    L = (OH - 1) * Wj + OW
    T = kH * kW
    P = sh * sw
    PL = Hi * Wj
    planes, shifts = _taps(kH, kW, dh, dw, sh, sw, Wj)
    if shifts[T - 1] + L > PL:  # the largest shift; guaranteed by the geometry
        raise AssertionError("phase-split plane too small (internal error)")
    M = shifts[T - 1]
    E = M + PL  # length of one row of gext
    # taps grouped by plane, row-major within a plane
    order = np.empty(T, dtype=np.int64)
    start = np.zeros(P + 1, dtype=np.int64)
    k = 0
    for pl in range(P):
        start[pl] = k
        for t in range(T):
            if planes[t] == pl:
                order[k] = t
                k += 1
    start[P] = k
    # Stream j of plane pl in group grp: c_o = grp * Cog + j // n_pl, tap
    # order[start[pl] + j % n_pl]; its offset in the flat gext and its weight
    # for input channel c_i (c = c_i - grp * Cig).
    offsets = np.zeros((groups, P, Cog * T), dtype=np.int64)
    weights = np.zeros((C_in, P, Cog * T))
    for pl in range(P):
        n_pl = start[pl + 1] - start[pl]
        for j in range(Cog * n_pl):
            t = order[start[pl] + j % n_pl]
            for grp in range(groups):
                co = grp * Cog + j // n_pl
                offsets[grp, pl, j] = co * E + M - shifts[t]
                for c in range(Cig):
                    weights[grp * Cig + c, pl, j] = weight[co, c, t // kW, t % kW]
    for n in prange(N):
        gxs = np.zeros((C_in, P, PL))
        if flat:
            gext = np.zeros(C_out * E)
            for co in range(C_out):
                g_co = g[n, co]
                for oh in range(OH):
                    dst = gext[co * E + M + oh * Wj : co * E + M + oh * Wj + OW]
                    src = g_co[oh]
                    for ow in range(OW):
                        dst[ow] = src[ow]
            for ci in range(C_in):
                grp = ci // Cig
                for pl in range(P):
                    n_streams = Cog * (start[pl + 1] - start[pl])
                    _accumulate_streams(gxs[ci, pl], gext, offsets[grp, pl, :n_streams],
                                        weights[ci, pl, :n_streams])
        else:
            for co in range(C_out):
                c0 = (co // Cog) * Cig
                gv = g[n, co]
                for c in range(Cig):
                    for kh in range(kH):
                        for kw in range(kW):
                            plane = planes[kh * kW + kw]
                            shift = shifts[kh * kW + kw]
                            wv = weight[co, c, kh, kw]
                            for oh in range(OH):
                                dst = gxs[c0 + c, plane, oh * Wj + shift : oh * Wj + shift + OW]
                                src = gv[oh]
                                for ow in range(OW):
                                    dst[ow] += wv * src[ow]
        _phase_merge(gxs, grad_x[n], top, left, sh, sw, Wj)
    return grad_x


@accelerates(conv2d_weight_vjp_numpy, rtol=1e-13,
             reason="the definition sums by one matrix product (BLAS) over the batch, in another order")
@jit_parallel
def conv2d_weight_vjp(x, g, kernel_hw, stride, padding, dilation, groups):
    """Vector-Jacobian product of :func:`conv2d_forward` with respect to its weight.

    .. math::

        \\bar w[c_o, c, k_h, k_w] = \\sum_n \\sum_{o_h, o_w} g[n, c_o, o_h, o_w]\\,
            x_p[n,\\; g C_{in}/G + c,\\; o_h s_h + k_h d_h,\\; o_w s_w + k_w d_w]

    the adjoint of ``weight -> conv2d_forward(x, weight, ...)``:
    ``<conv2d_forward(x, w), g> == <w, conv2d_weight_vjp(x, g)>``.

    Parameters
    ----------
    x : ndarray, float64, shape (N, C_in, H, W)
        Forward input.
    g : ndarray, float64, shape (N, C_out, OH, OW)
        Cotangent of the convolution output.
    kernel_hw : tuple of int
        ``(kH, kW)``.
    stride, padding, dilation, groups
        As in :func:`conv2d_forward`.

    Returns
    -------
    grad_w : ndarray, float64, shape (C_out, C_in // groups, kH, kW)

    Notes
    -----
    For each sample the sum over ``(o_h, o_w)`` is accumulated in row-major
    order (cells of the padding are skipped, not multiplied by zero); the
    per-sample sums are then added for ``n = 0, 1, ..., N-1`` in that order,
    independently of the number of threads.
    """
    _check_geometry(stride, padding, dilation)
    N, C_in, H, W = x.shape
    Ng, C_out, OH, OW = g.shape
    kH, kW = kernel_hw
    if Ng != N:
        raise ValueError("conv2d_weight_vjp: batch sizes of x and g differ")
    if groups < 1 or C_in % groups != 0 or C_out % groups != 0:
        raise ValueError("conv2d_weight_vjp: channels do not match groups")
    sh, sw = stride
    top, bottom, left, right = padding
    dh, dw = dilation
    if OH != _out_size(H + top + bottom, kH, dh, sh) or OW != _out_size(
        W + left + right, kW, dw, sw
    ):
        raise ValueError("conv2d_weight_vjp: g has the wrong spatial shape")
    Cig = C_in // groups
    Cog = C_out // groups
    partial = np.empty((N, C_out, Cig, kH, kW))
    for n in prange(N):
        for co in range(C_out):
            c0 = (co // Cog) * Cig
            for c in range(Cig):
                xv = x[n, c0 + c]
                gv = g[n, co]
                for kh in range(kH):
                    # rows oh with 0 <= oh*sh + kh*dh - top < H
                    r0 = kh * dh - top
                    oh_lo = max(0, _ceil_div(-r0, sh))
                    oh_hi = min(OH, _ceil_div(H - r0, sh))
                    for kw in range(kW):
                        s0 = kw * dw - left
                        ow_lo = max(0, _ceil_div(-s0, sw))
                        ow_hi = min(OW, _ceil_div(W - s0, sw))
                        acc = 0.0
                        for oh in range(oh_lo, oh_hi):
                            ih = oh * sh + r0
                            for ow in range(ow_lo, ow_hi):
                                acc += gv[oh, ow] * xv[ih, ow * sw + s0]
                        partial[n, co, c, kh, kw] = acc
    grad_w = np.zeros((C_out, Cig, kH, kW))
    for n in range(N):
        for co in range(C_out):
            for c in range(Cig):
                for kh in range(kH):
                    for kw in range(kW):
                        grad_w[co, c, kh, kw] += partial[n, co, c, kh, kw]
    return grad_w

