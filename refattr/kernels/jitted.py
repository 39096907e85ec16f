"""Numba-compiled kernels: 2-D convolution, average pooling, max pooling.

All arrays are float64 in NCHW layout (batch, channels, height, width); the
index arrays of max pooling are int64. Every function returns new arrays and
never writes to its arguments. Biases are not handled here: the layers add
them.

Conventions shared by all kernels (same names and signatures as
:mod:`refattr.kernels.numpy_twins`):

* ``stride = (sh, sw)``, ``dilation = (dh, dw)``, ``kernel = (kH, kW)`` and
  ``input_hw = (H, W)`` are tuples of two Python ints;
  ``padding = (top, bottom, left, right)`` is a tuple of four non-negative
  Python ints, so paddings may differ on the two sides of an axis.
* A padded input is ``xp[n, c, r, s] = x[n, c, r - top, s - left]`` where that
  index lies in the input plane, else 0 (convolution, average pooling) or
  ``-inf`` (max pooling: padding never wins).
* Output sizes, with ``Hp = H + top + bottom`` and ``Wp = W + left + right``::

      OH = (Hp - dh * (kH - 1) - 1) // sh + 1      (pooling: dh = dw = 1)
      OW = (Wp - dw * (kW - 1) - 1) // sw + 1

  A size that would be negative is clamped to 0 (an empty output).

Implementation notes
--------------------
The outer loop of every kernel is a ``prange`` over the batch axis (see
:mod:`refattr.kernels._jit`): each iteration writes only ``out[n]`` (or its
own per-sample scratch), so results are bitwise identical for any number of
threads. No ``fastmath``: every output is accumulated in a fixed, documented
order.

The convolutions work on a *phase-split* copy of the zero-padded input of one
sample: with strides ``(sh, sw)``, padded pixel ``(r, s)`` is stored in plane
``(r % sh) * sw + s % sw`` at flat position ``(r // sh) * Wj + s // sw``,
where ``Wj = ceil(Wp / sw)``. In that layout the input pixel read by output
``(oh, ow)`` through kernel tap ``(kh, kw)`` sits at flat position
``oh * Wj + ow + shift(kh, kw)`` of one plane, so for a fixed tap the whole
output plane is a single unit-stride loop with the weight held in a register,
whatever the stride and dilation, and with no bounds tests inside it. Up to
three consecutive taps share one such loop, ``((acc + w0 s0) + w1 s1) + w2 s2``:
the same products added in the same order as three loops, with a third of the
loads and stores of the accumulator (bit-for-bit the same result; no fused
multiply-add, which would round differently).
"""

from __future__ import annotations

import numpy as np

from ._jit import jit, jit_parallel, prange

__all__ = [
    "conv2d_forward",
    "conv2d_input_vjp",
    "conv2d_weight_vjp",
    "avgpool2d_forward",
    "avgpool2d_vjp",
    "maxpool2d_forward",
    "maxpool2d_vjp",
]


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


@jit
def _out_size(padded: int, k: int, d: int, s: int) -> int:
    """Number of window positions along one axis, ``(padded - d*(k-1) - 1)//s + 1``, at least 0."""
    n = (padded - d * (k - 1) - 1) // s + 1
    if n < 0:
        return 0
    return n


@jit
def _ceil_div(a: int, b: int) -> int:
    """``ceil(a / b)`` for integers, ``b > 0``."""
    return -((-a) // b)


@jit
def _check_geometry(stride, padding, dilation):
    sh, sw = stride
    top, bottom, left, right = padding
    dh, dw = dilation
    if sh < 1 or sw < 1:
        raise ValueError("stride must be positive")
    if dh < 1 or dw < 1:
        raise ValueError("dilation must be positive")
    if top < 0 or bottom < 0 or left < 0 or right < 0:
        raise ValueError("padding must be non-negative")


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


# --------------------------------------------------------------------------
# convolution
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# average pooling
# --------------------------------------------------------------------------


@jit
def _window_range(o, s, pad, k, size):
    """In-bounds taps ``[lo, hi)`` of window ``o``: taps t with 0 <= o*s - pad + t < size."""
    start = o * s - pad
    lo = max(0, -start)
    hi = min(k, size - start)
    return start, lo, hi


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
