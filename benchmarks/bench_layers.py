"""Forward + input VJP of the benchmark CNN: refattr (numba kernels) vs plain NumPy im2col + matmul.

Run: python benchmarks/bench_layers.py        (not part of the test suite)

Both paths compute the same network in float64 at batch 32; the script checks they agree before
timing, then prints the median times and the ratio refattr / im2col.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from _common import benchmark_cnn, machine_line, median_time
from refattr.methods._common import one_hot


def im2col_conv(x, w, b, stride, pad):
    """Plain NumPy convolution: pad, gather every window (im2col), one matmul."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    kh, kw = w.shape[2:]
    cols = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]  # N C OH OW kh kw
    n, c, oh, ow = cols.shape[:4]
    cols = cols.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw)
    out = cols @ w.reshape(w.shape[0], -1).T + b
    return out.reshape(n, oh, ow, -1).transpose(0, 3, 1, 2), (cols, xp.shape)


def im2col_conv_vjp(g, w, stride, pad, xp_shape, x_shape):
    """Transpose of im2col_conv: one matmul, then scatter-add the columns back (col2im)."""
    n, c_out, oh, ow = g.shape
    kh, kw = w.shape[2:]
    cols_grad = g.transpose(0, 2, 3, 1).reshape(-1, c_out) @ w.reshape(c_out, -1)
    cols_grad = cols_grad.reshape(n, oh, ow, xp_shape[1], kh, kw)
    gxp = np.zeros(xp_shape)
    for i in range(kh):
        for j in range(kw):
            gxp[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride] += cols_grad[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return gxp[:, :, pad:pad + x_shape[2], pad:pad + x_shape[3]]


def im2col_forward_vjp(net, x, g_out):
    conv1, _, conv2, _, _, dense = net.layers
    z1, (_, xp1) = im2col_conv(x, conv1.weight, conv1.bias, 1, 1)
    a1 = np.maximum(z1, 0)
    z2, (_, xp2) = im2col_conv(a1, conv2.weight, conv2.bias, 2, 1)
    a2 = np.maximum(z2, 0)
    out = a2.reshape(a2.shape[0], -1) @ dense.weight.T + dense.bias
    g = (g_out @ dense.weight).reshape(a2.shape) * (z2 > 0)
    g = im2col_conv_vjp(g, conv2.weight, 2, 1, xp2, a1.shape) * (z1 > 0)
    return out, im2col_conv_vjp(g, conv1.weight, 1, 1, xp1, x.shape)


def refattr_forward_vjp(net, x, g_out):
    trace = net.trace(x)
    return trace.output, net.backward(g_out, trace)


def main():
    net = benchmark_cnn()
    x = np.random.default_rng(1).normal(size=(32, 1, 28, 28))
    g_out = one_hot(np.arange(32) % 10, 10)
    out_a, grad_a = refattr_forward_vjp(net, x, g_out)
    out_b, grad_b = im2col_forward_vjp(net, x, g_out)
    np.testing.assert_allclose(out_a, out_b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad_a, grad_b, rtol=1e-12, atol=1e-12)
    t_ref = median_time(lambda: refattr_forward_vjp(net, x, g_out))
    t_np = median_time(lambda: im2col_forward_vjp(net, x, g_out))
    print(f"# forward + input VJP, benchmark CNN, batch 32, float64 ({machine_line()})")
    print("| path | median ms |")
    print("| --- | --- |")
    print(f"| refattr (numba kernels) | {1e3 * t_ref:.2f} |")
    print(f"| NumPy im2col + matmul | {1e3 * t_np:.2f} |")
    print(f"ratio refattr / im2col: {t_ref / t_np:.2f} (goal <= 1)")


if __name__ == "__main__":
    main()
