"""Write derivations/integrated_gradients.ipynb from the cells below, with its outputs.

The notebook is generated, not hand-edited: change the cells here and rerun
``python derivations/build_integrated_gradients_notebook.py`` (it executes the notebook in a Jupyter
kernel and stores the outputs; the ``notebooks`` extra). tests/derivations/test_notebooks.py runs it
and checks the stored outputs. Its figure is shown, never saved: figures/make_figures.py saves
``convergence_figure`` from the namespace that derivations/run.py returns.
"""

from _notebook import NotebookCells, build

CELLS = NotebookCells()
md, code = CELLS.md, CELLS.code


md(r"""
# Integrated gradients, derived and checked

Integrated gradients (Sundararajan, Taly & Yan 2017) explains the difference $t(x) - t(x')$ of one
output $t$ between an input $x$ and a baseline $x'$ by accumulating gradients along the straight
path between them. This notebook derives the method step by step and checks every step with
numbers: the path integral and the chain rule, the fundamental theorem of line integrals (sums are
path independent, single attributions are not), completeness and the one-feature case, Riemann
sums as "average gradient $\times$ $\Delta$input", and the error of every quadrature rule as the
number of steps grows, on a smooth (tanh) network and on a ReLU network, where refattr computes the
integral exactly. It ends with assertions against `refattr.methods.integrated_gradients`.

| symbol | code | meaning |
| --- | --- | --- |
| $x'$ | `baseline` | the reference input |
| $\gamma(\alpha) = x' + \alpha\,(x - x')$ | `path` | the straight path, $\alpha \in [0, 1]$ |
| $\phi_i$ | `values` | the attribution of feature $i$ |
| $a_k$, $w_k$ | `nodes`, `weights` | a quadrature rule on $[0, 1]$ |
| $m$, $n$ | `n_steps` | number of gradient evaluations |
""")

code(r"""
import matplotlib.pyplot as plt
import numpy as np

from refattr import Dense, ReLU, Sequential, Tanh
from refattr.methods.integrated_gradients import integrated_gradients
from refattr.quadrature import nodes_and_weights
from refattr.testing import random_mlp

saved_print_options = np.get_printoptions()      # restored in the last cell
np.set_printoptions(precision=6, suppress=True)


def t_of(net, points, target=0):
    # the explained scalar t = f(.)[target] at each row of points
    return net(np.atleast_2d(points))[:, target]


def grad_of(net, points, target=0):
    # the ordinary gradient dt/dx at each row of points (refattr's VJP)
    points = np.atleast_2d(np.asarray(points, dtype=float))
    trace = net.trace(points)
    g = np.zeros_like(trace.output)
    g[:, target] = 1.0
    return net.backward(g, trace)
""")

md(r"""
## 1. The path integral and the chain rule

Let $\gamma(\alpha) = x' + \alpha\,(x - x')$, so $\gamma(0) = x'$ and $\gamma(1) = x$. Along the
path, $t$ is a function of one variable, and the chain rule gives its derivative:

$$\frac{d\, t(\gamma(\alpha))}{d\alpha} = \sum_i \frac{\partial t}{\partial x_i}(\gamma(\alpha))\,
\frac{d\gamma_i}{d\alpha} = \sum_i \frac{\partial t}{\partial x_i}(\gamma(\alpha))\,(x_i - x'_i).$$

Integrated gradients keeps the terms of this sum apart and integrates each over $\alpha$:

$$\phi_i = \int_0^1 \frac{\partial t}{\partial x_i}(\gamma(\alpha))\,\frac{d\gamma_i}{d\alpha}\,d\alpha
= (x_i - x'_i)\int_0^1 \frac{\partial t}{\partial x_i}\big(x' + \alpha(x - x')\big)\,d\alpha .$$

(A detail that is easy to trip over: $\partial/\partial\gamma_i$ and $\partial/\partial x_i$ are
the same partial derivative, the derivative of $t$ in direction $i$, evaluated at the point
$\gamma(\alpha)$.) First the chain rule, numerically: on a small tanh network the central
difference of $\alpha \mapsto t(\gamma(\alpha))$ equals $\nabla t(\gamma(\alpha)) \cdot (x - x')$.
""")

code(r"""
rng = np.random.default_rng(0)
smooth = random_mlp(rng, sizes=(2, 6, 6, 1), activation="tanh")
x = np.array([1.5, -1.0])
baseline = np.array([-0.5, 0.8])
delta = x - baseline

h = 1e-5
for alpha in (0.1, 0.5, 0.9):
    fd = (t_of(smooth, baseline + (alpha + h) * delta) - t_of(smooth, baseline + (alpha - h) * delta)) / (2 * h)
    chain = grad_of(smooth, baseline + alpha * delta)[0] @ delta
    print(f"alpha = {alpha}: central difference {fd[0]: .10f}   gradient . (x - x') {chain: .10f}")
    assert abs(fd[0] - chain) < 1e-8
""")

md(r"""
## 2. The fundamental theorem of line integrals: sums are path independent, attributions are not

Summing the $\phi_i$ gives the line integral of $\nabla t$ along the path, and by the chain rule
above it is the integral of $d\,t(\gamma(\alpha))/d\alpha$:

$$\sum_i \phi_i = \int_0^1 \frac{d\, t(\gamma(\alpha))}{d\alpha}\,d\alpha = t(x) - t(x')$$

for *any* differentiable path from x' to x (the gradient theorem). The per-feature terms, however,
depend on the path. Compare the straight path with a two-leg path that first moves feature 1 from
$x'_1$ to $x_1$ (feature 2 held at $x'_2$) and then feature 2 from $x'_2$ to $x_2$. On the first
leg only $d\gamma_1/ds$ is non-zero, on the second only $d\gamma_2/ds$, so the two-leg attributions
are

$$\phi^{\text{legs}}_1 = (x_1 - x'_1)\int_0^1 \frac{\partial t}{\partial x_1}(x'_1 + s(x_1 - x'_1),\ x'_2)\,ds,\qquad
\phi^{\text{legs}}_2 = (x_2 - x'_2)\int_0^1 \frac{\partial t}{\partial x_2}(x_1,\ x'_2 + s(x_2 - x'_2))\,ds .$$

Both are one-dimensional integrals; the notebook computes them with its own 40-point
Gauss-Legendre rule (numpy's nodes, independent of refattr's quadrature module). The straight
path's attributions are refattr's integrated gradients.
""")

code(r"""
t_nodes, t_weights = np.polynomial.legendre.leggauss(40)
s_nodes, s_weights = (t_nodes + 1) / 2, t_weights / 2        # mapped to [0, 1]

leg1 = np.stack([baseline[0] + s_nodes * delta[0], np.full_like(s_nodes, baseline[1])], axis=1)
leg2 = np.stack([np.full_like(s_nodes, x[0]), baseline[1] + s_nodes * delta[1]], axis=1)
phi_legs = np.array([delta[0] * (s_weights @ grad_of(smooth, leg1)[:, 0]),
                     delta[1] * (s_weights @ grad_of(smooth, leg2)[:, 1])])

straight = integrated_gradients(smooth, x[None], baseline, rule="quad", rtol=1e-12)
phi_straight = straight.values[0]
delta_t = t_of(smooth, x)[0] - t_of(smooth, baseline)[0]

print("t(x) - t(x')            :", f"{delta_t: .12f}")
print("straight path  phi      :", phi_straight, " sum", f"{phi_straight.sum(): .12f}")
print("two-leg path   phi      :", phi_legs, " sum", f"{phi_legs.sum(): .12f}")
assert abs(phi_straight.sum() - delta_t) < 1e-12
assert abs(phi_legs.sum() - delta_t) < 1e-12
assert np.abs(phi_straight - phi_legs).max() > 1e-2      # same sum, different attributions
""")

md(r"""
## 3. Completeness, and the one-feature case

Completeness is the statement above for the straight path: $\sum_i \phi_i = t(x) - t(x')$. If the
baseline is chosen with $t(x') = 0$, the attributions add up to the prediction itself.

If $x$ and $x'$ differ in one feature $k$ only, then $x_i - x'_i = 0$ for every $i \ne k$, so
$\phi_i = 0$ there ($\phi_i$ is proportional to $x_i - x'_i$), and completeness leaves everything
to feature $k$: $\phi_k = t(x) - t(x')$. refattr returns exact zeros for those features.
""")

code(r"""
wide = random_mlp(np.random.default_rng(1), sizes=(5, 8, 8, 1), activation="tanh")
x5 = np.array([0.3, -1.2, 2.0, 0.7, -0.4])
base5 = np.zeros(5)
res = integrated_gradients(wide, x5[None], base5, rule="quad", rtol=1e-12)
print("sum of attributions", res.values.sum(), " t(x) - t(x')", (t_of(wide, x5) - t_of(wide, base5))[0],
      " completeness gap", res.completeness_gap[0])

x_one = base5.copy()
x_one[2] = 2.0                                   # only feature 2 differs from the baseline
one = integrated_gradients(wide, x_one[None], base5, rule="quad", rtol=1e-12)
print("one feature differs:", one.values[0], " t(x) - t(x') =", (t_of(wide, x_one) - t_of(wide, base5))[0])
assert np.all(one.values[0, [0, 1, 3, 4]] == 0.0)
""")

md(r"""
## 4. Riemann sums: average gradient times $\Delta$input

The IG paper (section 5) approximates the integral by a right Riemann sum with $m$ steps:

$$\phi_i \approx (x_i - x'_i)\,\frac{1}{m}\sum_{k=1}^m \frac{\partial t}{\partial x_i}\Big(x' + \tfrac{k}{m}(x - x')\Big)
= \Delta\text{input}_i \times \text{average gradient}_i .$$

Computed by hand here (the mean of $m$ gradients, times $\Delta x$) it is exactly refattr's
`rule="right"`. Other rules only change where the gradients are taken and how they are weighted: a
rule is data, nodes $a_k$ and weights $w_k$ summing to 1, and

$$\phi \approx \Delta x \odot \sum_k w_k\, \nabla t(x' + a_k\, \Delta x).$$
""")

code(r"""
m = 8
points = baseline + (np.arange(1, m + 1) / m)[:, None] * delta
average_gradient = grad_of(smooth, points).mean(axis=0)
by_hand = delta * average_gradient
right = integrated_gradients(smooth, x[None], baseline, rule="right", n_steps=m).values[0]
print("Δinput x average gradient:", by_hand)
print("refattr rule='right'     :", right)
assert np.allclose(by_hand, right, rtol=1e-14, atol=1e-16)
for rule in ("left", "right", "midpoint", "trapezoid", "gauss_legendre"):
    nodes, weights = nodes_and_weights(rule, 5)
    print(f"{rule:15s} nodes {nodes}  weights sum {weights.sum():.16f}")
""")

md(r"""
## 5. How fast each rule converges

Write the integrand as $g(\alpha) = \Delta x \odot \nabla t(\gamma(\alpha))$. For a smooth network
$g$ is smooth, and the classical error terms apply: left and right Riemann sums are $O(1/n)$, with
error $\approx \pm\,(g(1) - g(0)) / (2n)$; midpoint and trapezoid are $O(1/n^2)$; Gauss-Legendre
with $n$ nodes is exact for polynomials of degree $2n - 1$ and converges exponentially for analytic
$g$.

For a ReLU network $t$ is piecewise linear along the path, so $g$ is piecewise *constant*: it jumps
where a ReLU input crosses 0 (or a max-pool winner changes). A jump inside a cell of width $1/n$
costs every fixed rule an error of order $\text{jump} \times 1/n$, whichever rule it is: all fall
to $O(1/n)$, and the error is not monotone in $n$ (it depends on where the nodes fall relative to
the jumps). The exact value needs no quadrature at all: between breakpoints
$0 = \alpha_0 < \alpha_1 < \dots < \alpha_P = 1$ the gradient is constant, so

$$\phi = \Delta x \odot \sum_{p=1}^{P} (\alpha_p - \alpha_{p-1})\, \nabla t\Big(\gamma\big(\tfrac{\alpha_{p-1} + \alpha_p}{2}\big)\Big),$$

which refattr's `rule="exact"` computes by walking the path from kink to kink.

Reference values: for tanh, Gauss-Legendre with 300 nodes (checked against 200 nodes); for ReLU,
`rule="exact"` (checked by its completeness gap).
""")

code(r"""
relu = random_mlp(np.random.default_rng(2), sizes=(2, 16, 16, 1), activation="relu")
ns = np.array([2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512])
rules = ("left", "right", "midpoint", "trapezoid", "gauss_legendre")

ref_smooth = integrated_gradients(smooth, x[None], baseline, rule="gauss_legendre", n_steps=300).values
check = integrated_gradients(smooth, x[None], baseline, rule="gauss_legendre", n_steps=200).values
assert np.abs(ref_smooth - check).max() < 1e-15
exact_relu = integrated_gradients(relu, x[None], baseline, rule="exact")
ref_relu = exact_relu.values
print("ReLU network: breakpoints along the path", exact_relu.options["breakpoints"][0])
print("              pieces", exact_relu.options["n_pieces"][0], " completeness gap", exact_relu.completeness_gap[0])

errors = {}
for name, net, ref in (("tanh", smooth, ref_smooth), ("relu", relu, ref_relu)):
    for rule in rules:
        errors[name, rule] = np.array([
            np.abs(integrated_gradients(net, x[None], baseline, rule=rule, n_steps=int(n)).values - ref).max()
            for n in ns])

# fitted orders on the smooth network, over n = 16..256 (before rounding takes over)
fit = (ns >= 16) & (ns <= 256)
slopes = {rule: np.polyfit(np.log(ns[fit]), np.log(errors["tanh", rule][fit]), 1)[0]
          for rule in ("left", "right", "midpoint", "trapezoid")}
print("tanh network, fitted log-log slopes:", {k: round(float(v), 3) for k, v in slopes.items()})
print("tanh network, Gauss-Legendre errors:", {int(n): float(f"{e:.2e}") for n, e in zip(ns[:8], errors["tanh", "gauss_legendre"][:8])})
slopes_relu = {rule: np.polyfit(np.log(ns[fit]), np.log(errors["relu", rule][fit] + 1e-300), 1)[0] for rule in rules}
print("relu network, fitted log-log slopes:", {k: round(float(v), 3) for k, v in slopes_relu.items()})
""")

md(r"""
The figure draws every error below $10^{-14}$ at $10^{-14}$ (the shaded band): below that, the
difference is rounding, and its exact value depends on the machine.
""")

code(r"""
floor = 1e-14                                               # rounding level: errors below are drawn here
convergence_figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
for ax, name, title in ((axes[0], "tanh", "smooth network (tanh)"), (axes[1], "relu", "ReLU network")):
    ax.axhspan(floor / 10, floor, color="0.9", zorder=0)
    for rule, marker in zip(rules, "o^sdv"):
        ax.loglog(ns, np.maximum(errors[name, rule], floor), marker=marker, markersize=4, label=rule)
    ax.loglog(ns, 0.5 / ns, "k--", linewidth=0.8, label="$1/n$")
    ax.loglog(ns, 0.5 / ns ** 2, "k:", linewidth=0.8, label="$1/n^2$")
    ax.set_title(title)
    ax.set_xlabel("$n$ (gradient evaluations)")
    ax.grid(True, which="major", alpha=0.3)
axes[0].set_ylabel(r"$\max_i\,|\phi_i^{\mathrm{rule}} - \phi_i^{\mathrm{exact}}|$")
axes[0].set_ylim(floor / 10, 10)
axes[1].legend(fontsize=8)
convergence_figure.suptitle("Integrated gradients: quadrature error against the exact value")
convergence_figure.tight_layout()
""")

md(r"""
On the tanh network the fitted slopes are close to -1 (left, right) and -2 (midpoint,
trapezoid), and Gauss-Legendre reaches rounding level with a handful of nodes. On the ReLU network
every rule, Gauss-Legendre included, falls to roughly 1/n with visible non-monotone wiggles.
That is why refattr's default (`rule="auto"`) is the exact walk on piecewise-linear networks and
adaptive quadrature elsewhere: a fixed n (Captum's default is Gauss-Legendre with 50 steps) gives
an error that depends on where the nodes happen to fall.

## 6. Assertions against the library
""")

code(r"""
# completeness: exact on ReLU, to the tolerance on tanh
assert abs(exact_relu.completeness_gap[0]) <= 1e-12 * abs(t_of(relu, x)[0] - t_of(relu, baseline)[0])
assert abs(straight.completeness_gap[0]) <= 1e-11
# convergence orders on the smooth network
assert abs(slopes["left"] + 1) < 0.15 and abs(slopes["right"] + 1) < 0.15
assert abs(slopes["midpoint"] + 2) < 0.15 and abs(slopes["trapezoid"] + 2) < 0.15
assert errors["tanh", "gauss_legendre"][ns == 16][0] < 1e-13
# on ReLU every rule is about first order and Gauss-Legendre has no advantage left
assert all(-1.6 < s < -0.6 for s in slopes_relu.values())
# the saturation example of Sundararajan et al. (2017, section 2.1): f(x) = 1 - relu(1 - x),
# x = 2, x' = 0 gives exactly f(2) - f(0) = 1
f = Sequential([Dense([[-1.0]], [1.0]), ReLU(), Dense([[-1.0]], [1.0])])
assert integrated_gradients(f, [[2.0]]).values[0, 0] == 1.0
# path dependence of the attributions, path independence of the sum
assert abs(phi_legs.sum() - phi_straight.sum()) < 1e-12 and np.abs(phi_legs - phi_straight).max() > 1e-2
print("all assertions hold")
np.set_printoptions(**saved_print_options)
""")


if __name__ == "__main__":
    build(CELLS, "integrated_gradients")
