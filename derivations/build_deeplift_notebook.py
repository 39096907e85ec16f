"""Write derivations/deeplift.ipynb from the cells below, with its outputs.

The notebook is generated, not hand-edited: change the cells here and rerun
``python derivations/build_deeplift_notebook.py`` (it executes the notebook in a Jupyter kernel and
stores the outputs; the ``notebooks`` extra). tests/derivations/test_notebooks.py runs it and checks
the stored outputs.
"""

from _notebook import NotebookCells, build

CELLS = NotebookCells()
md, code = CELLS.md, CELLS.code


md(r"""
# DeepLIFT, derived and checked

DeepLIFT (Shrikumar, Greenside & Kundaje 2017) explains the difference $\Delta t = t(x) - t(x')$ of
one output between an input $x$ and a reference $x'$. Every neuron's difference from its reference
activation is split into a positive and a negative part, $\Delta = \Delta^+ + \Delta^-$;
*contributions* $C_{\Delta x \Delta t}$ are propagated so that they always add up to $\Delta t$
(**summation-to-delta**), and *multipliers* $m_{\Delta x \Delta t} = C_{\Delta x \Delta t} / \Delta x$
obey a chain rule, so one backward pass computes them.

This notebook derives the rules refattr uses (the Linear, Rescale and RevealCancel rules of
section 3 of the paper), draws multipliers against gradients, works a two-layer example both split
and unsplit, shows where RevealCancel and Rescale part ways, answers what RevealCancel does with a
non-monotonic activation, and ends with assertions against `refattr.methods.deeplift`.

| symbol | code | meaning |
| --- | --- | --- |
| $x'$ | `baseline` | the reference input |
| $\Delta x = x - x'$ | `delta` | difference from reference |
| $\Delta x^+$, $\Delta x^-$ | `pos`, `neg` | the positive and negative parts (input layer: $\max(\Delta x, 0)$, $\min(\Delta x, 0)$) |
| $m^+$, $m^-$ | `m_pos`, `m_neg` | multipliers $m_{\Delta x^+ \Delta t}$, $m_{\Delta x^- \Delta t}$ |
| $C$ | `contributions` | $C_{\Delta x \Delta t} = m^+ \Delta x^+ + m^- \Delta x^-$ |
""")

code(r"""
import matplotlib.pyplot as plt
import numpy as np

from refattr import Dense, ReLU, Sequential, Swish, Tanh, gradient
from refattr.layers.activations import tanh_secant
from refattr.methods.deeplift import deeplift, deeplift_layers
from refattr.testing import random_network

saved_print_options = np.get_printoptions()      # restored in the last cell
np.set_printoptions(precision=6, suppress=True)
""")

md(r"""
## 1. The Linear rule: a four-way split and the 0.5 rule

Take one linear neuron $y = b + \sum_i w_i x_i$. Its difference from reference is linear,
$\Delta y = \sum_i w_i \Delta x_i$, and is split by the sign of each term:

$$\Delta y^+ = \sum_i \mathbf{1}\{w_i \Delta x_i > 0\}\, w_i \Delta x_i, \qquad
\Delta y^- = \sum_i \mathbf{1}\{w_i \Delta x_i < 0\}\, w_i \Delta x_i .$$

The sign that decides is that of the *total* $\Delta x_i$. Writing $\Delta x_i = \Delta x_i^+ + \Delta x_i^-$
(the parts the previous layer produced), each term splits four ways (Shrikumar et al. 2017,
section 3.5.1):

$$\begin{aligned}
C_{\Delta x_i^+ \Delta y^+} &= \mathbf{1}\{w_i \Delta x_i > 0\}\, w_i \Delta x_i^+, &
C_{\Delta x_i^- \Delta y^+} &= \mathbf{1}\{w_i \Delta x_i > 0\}\, w_i \Delta x_i^-, \\
C_{\Delta x_i^+ \Delta y^-} &= \mathbf{1}\{w_i \Delta x_i < 0\}\, w_i \Delta x_i^+, &
C_{\Delta x_i^- \Delta y^-} &= \mathbf{1}\{w_i \Delta x_i < 0\}\, w_i \Delta x_i^-,
\end{aligned}$$

so every multiplier into $\Delta y^+$ is $\mathbf{1}\{w_i \Delta x_i > 0\}\, w_i$ and every multiplier
into $\Delta y^-$ is $\mathbf{1}\{w_i \Delta x_i < 0\}\, w_i$, whichever part of $x_i$ it applies to.
A neuron with $\Delta x_i = 0$ exactly has no sign; the **0.5 rule** sends it to both halves with
weight $\tfrac12 w_i$. Its contribution is zero either way, but its multipliers are not, and they
matter whenever its *parts* are non-zero (RevealCancel can produce $\Delta x^+ = -\Delta x^- \ne 0$)
or it sits above a layer whose $\Delta$ is not zero.

An example with four inputs; input 0 arrives with parts $(1.5, -0.5)$ (total 1), input 3 with total
0 but parts $(0.4, -0.4)$:
""")

code(r"""
w = np.array([2.0, -1.0, 0.5, 3.0])
d_pos = np.array([1.5, 1.0, 0.0, 0.4])       # Δx_i+ as produced upstream
d_neg = np.array([-0.5, 0.0, -1.0, -0.4])    # Δx_i-
d = d_pos + d_neg                            # totals (1, 1, -1, 0)
into_pos = np.where(w * d > 0, 1.0, np.where(w * d < 0, 0.0, 0.5))   # share of w_i routed to Δy+
into_neg = np.where(w * d < 0, 1.0, np.where(w * d > 0, 0.0, 0.5))
C = {
    "C(x+ -> y+)": into_pos * w * d_pos, "C(x- -> y+)": into_pos * w * d_neg,
    "C(x+ -> y-)": into_neg * w * d_pos, "C(x- -> y-)": into_neg * w * d_neg,
}
for name, value in C.items():
    print(f"{name}: {value}")
dy_pos = sum(C["C(x+ -> y+)"] + C["C(x- -> y+)"])
dy_neg = sum(C["C(x+ -> y-)"] + C["C(x- -> y-)"])
print("Δy+ =", dy_pos, " Δy- =", dy_neg, " Δy =", dy_pos + dy_neg, " w·Δx =", w @ d)
""")

md(r"""
Input 0 feeds $\Delta y^+$ ($w \Delta x = 2 > 0$) with *both* of its parts: its negative part
contributes $C_{\Delta x^- \Delta y^+} = -1$ to the positive half. The Linear rule has cross terms;
it is the element-wise rules below that keep each part in its own half. Input 3 (total 0) feeds
both halves with $\tfrac12 w = 1.5$ per unit, and its contributions cancel within each half.

The four sums regroup as expected: $C_{\Delta x_i^+ \Delta y} = w_i \Delta x_i^+$, and
$C_{\Delta x_i \Delta y} = w_i \Delta x_i$ in every grouping. For a layer with weight matrix $W$
this needs no per-example masking. With $W^+ = \max(W, 0)$, $W^- = \min(W, 0)$ and the total's
parts $\Delta x^> = \max(\Delta x, 0)$, $\Delta x^< = \min(\Delta x, 0)$:

$$\Delta y^+ = W^+ \Delta x^> + W^- \Delta x^<, \qquad \Delta y^- = W^- \Delta x^> + W^+ \Delta x^<$$

(a weight and a difference of equal signs make a positive term), and backwards, for the multipliers
$M^+$ and $M^-$ of $\Delta y^+$ and $\Delta y^-$, input $i$ receives

$$m_i = \begin{cases}
\big((W^+)^\top M^+ + (W^-)^\top M^-\big)_i & \Delta x_i > 0, \\
\big((W^-)^\top M^+ + (W^+)^\top M^-\big)_i & \Delta x_i < 0, \\
\text{the mean of the two} & \Delta x_i = 0 .
\end{cases}$$

The input's two parts get the *same* multiplier.
""")

code(r"""
W = np.array([[2.0, -1.0, 0.5, 3.0], [-1.0, 0.5, 2.0, -2.0]])
Wp, Wn = np.maximum(W, 0), np.minimum(W, 0)
dp, dn = np.maximum(d, 0), np.minimum(d, 0)
print("matrix form, neuron 0: Δy+ =", (Wp @ dp + Wn @ dn)[0], " Δy- =", (Wn @ dp + Wp @ dn)[0])
M_pos, M_neg = np.array([1.0, 0.3]), np.array([0.2, -0.5])
m_if_pos = Wp.T @ M_pos + Wn.T @ M_neg
m_if_neg = Wn.T @ M_pos + Wp.T @ M_neg
m = np.where(d > 0, m_if_pos, np.where(d < 0, m_if_neg, 0.5 * (m_if_pos + m_if_neg)))
# The same multipliers from the indicator form, term by term:
m_terms = np.array([sum((W[j, i] * d[i] > 0) * W[j, i] * M_pos[j] + (W[j, i] * d[i] < 0) * W[j, i] * M_neg[j]
                        + (d[i] == 0) * 0.5 * W[j, i] * (M_pos[j] + M_neg[j]) for j in range(2)) for i in range(4)])
print("multipliers, matrix form:", m)
print("multipliers, term by term:", m_terms)
""")

md(r"""
## 2. Multipliers and the chain rule

A multiplier is a contribution per unit of difference, $m_{\Delta x \Delta y} = C_{\Delta x \Delta y} / \Delta x$,
a finite-difference analogue of a partial derivative. If $x$ reaches $t$ only through
$y_1, \dots, y_n$, the chain rule for multipliers (section 3.3)

$$m_{\Delta x \Delta t} = \sum_j m_{\Delta x \Delta y_j}\, m_{\Delta y_j \Delta t}
= \sum_j \sum_{* \in \{+,-\}} m_{\Delta x \Delta y_j^*}\, m_{\Delta y_j^* \Delta t} \quad \text{(split form)}$$

is what makes contributions add up layer after layer: with $C_{\Delta x \Delta t} = m_{\Delta x \Delta t}\, \Delta x$,

$$\sum_x C_{\Delta x \Delta t} = \sum_j m_{\Delta y_j \Delta t} \sum_x m_{\Delta x \Delta y_j} \Delta x
= \sum_j m_{\Delta y_j \Delta t}\, \Delta y_j = \sum_j C_{\Delta y_j \Delta t} = \Delta t,$$

using summation-to-delta for each $y_j$ ($\sum_x C_{\Delta x \Delta y_j} = \Delta y_j$) and then for
the $y$ layer. So a backward pass that multiplies by each layer's multipliers instead of its
Jacobian computes every $m_{\Delta x \Delta t}$ at once, as backpropagation computes gradients. For
purely linear layers the multipliers *are* the weights and the chain rule is the matrix product:
""")

code(r"""
rng = np.random.default_rng(0)
A, B = rng.normal(size=(3, 4)), rng.normal(size=(1, 3))
linear_net = Sequential([Dense(A), Dense(B)])
x_lin, ref_lin = rng.normal(size=(1, 4)), rng.normal(size=(1, 4))
r = deeplift(linear_net, x_lin, ref_lin)
print("multipliers from DeepLIFT:", r.multipliers[0])
print("product of the weights   :", (B @ A)[0])
""")

md(r"""
## 3. Multipliers are secant slopes, gradients are tangent slopes

For one input and one output, summation-to-delta leaves DeepLIFT no choice: $C_{\Delta x \Delta t} = \Delta t$,
so the multiplier is the slope of the secant from the reference to the input,

$$m_{\Delta x \Delta t} = \frac{t(x) - t(x')}{x - x'},$$

while the gradient is the slope of the tangent at $x$ alone. The two failures of gradients that
motivate DeepLIFT (Shrikumar et al. 2017, figures 1 and 2: saturation and thresholding) show why the
difference matters; in one dimension, with reference $x' = 0$:

* **saturation**, $t(x) = 1 - \operatorname{relu}(1 - x)$ (Sundararajan et al.'s example too): above $x = 1$ the output is flat, so
  the gradient is 0 although $x$ moved $t$ from 0 to 1; the multiplier is $1/x$;
* **thresholding**, $t(x) = \operatorname{relu}(x - 1)$: the gradient jumps from 0 to 1 at the
  threshold, while the multiplier $1 - 1/x$ rises continuously from 0.

The figure draws refattr's Rescale multipliers and gradients, and the secant slope computed by hand
from the formula above. (In one dimension integrated gradients gives the same $t(x) - t(x')$, so its
average gradient is the same secant; with more inputs the three part ways.)
""")

code(r"""
saturation = Sequential([Dense([[-1.0]], [1.0]), ReLU(), Dense([[-1.0]], [1.0])])   # 1 - relu(1 - x)
threshold = Sequential([Dense([[1.0]], [-1.0]), ReLU()])                            # relu(x - 1)
xs = np.linspace(-0.975, 2.975, 80)[:, None]          # steps of 0.05, off the reference 0 and the kink 1
fine = np.linspace(-0.999, 2.999, 1001)[:, None]
examples = (("saturation: $1 - \\mathrm{relu}(1 - x)$", saturation), ("thresholding: $\\mathrm{relu}(x - 1)$", threshold))

slopes_figure, axes = plt.subplots(2, 2, figsize=(10, 6), sharex=True, height_ratios=(2, 3))
slopes = {}
for column, (title, net) in enumerate(examples):
    t_ref = net(np.zeros((1, 1)))[0, 0]
    secant = (net(xs)[:, 0] - t_ref) / xs[:, 0]           # (t(x) - t(x')) / (x - x'), by hand
    multiplier = deeplift(net, xs, 0.0, rule="rescale").multipliers[:, 0]
    slopes[title] = secant, multiplier
    top, bottom = axes[:, column]
    top.plot(fine[:, 0], net(fine)[:, 0], color="k")
    x_chord = 2.5                                          # one secant drawn as a chord
    top.plot([0.0, x_chord], [t_ref, net([[x_chord]])[0, 0]], color="tab:orange", linestyle="--",
             label="secant from $x' = 0$ to $x = 2.5$")
    top.plot([0.0], [t_ref], "o", color="tab:orange")
    top.set_title(title)
    top.set_ylabel("$t(x)$")
    top.legend(fontsize=8, loc="upper left")
    bottom.plot(fine[:, 0], gradient(net, fine).values[:, 0], color="tab:blue", linewidth=2,
                label="gradient $dt/dx$ at $x$")
    bottom.plot(xs[:, 0], secant, color="k", linewidth=0.8, label="secant slope $(t(x) - t(x'))/(x - x')$")
    bottom.plot(xs[::3, 0], multiplier[::3], "o", color="tab:orange", markersize=4,
                label="DeepLIFT multiplier (refattr)")
    bottom.set_xlabel("$x$ (reference $x' = 0$)")
    bottom.set_ylabel("slope")
    bottom.set_ylim(-0.1, 1.15)
    bottom.grid(True, alpha=0.3)
axes[1, 1].legend(fontsize=8, loc="upper left")
slopes_figure.suptitle("DeepLIFT multipliers against gradients")
slopes_figure.tight_layout()
""")

md(r"""
At $x = 2$ on the saturating unit the gradient says $x$ does not matter; the multiplier says it
accounts for $t(2) - t(0) = 1$ at a rate of $\tfrac12$ per unit. On the threshold unit, the gradient
switches the explanation on and off at $x = 1$; the multiplier does not jump.

## 4. A two-layer example, split and unsplit

Take two inputs, a linear layer $h_j = b_j + \sum_i w_{ij} x_i$, an element-wise $a_j = f(h_j)$, and
$y = \beta_1 a_1 + \beta_2 a_2$. Under the Rescale rule, the element-wise multiplier is the divided
difference $m_{\Delta h_j \Delta a_j} = \Delta a_j / \Delta h_j$ for both halves; it is sign-blind.

Unsplit, the chain rule gives

$$m_{\Delta x_1 \Delta y} = w_{11} \frac{\Delta a_1}{\Delta h_1} \beta_1 + w_{12} \frac{\Delta a_2}{\Delta h_2} \beta_2 .$$

Split, $x_1$ reaches $y$ through $h_1^+, h_1^-, h_2^+, h_2^-$, each then through $a_j^+$ and $a_j^-$:

$$\begin{aligned}
m_{\Delta x_1 \Delta y} ={}& m_{\Delta x_1 \Delta h_1^+} \big(m_{\Delta h_1^+ \Delta a_1^+} m_{\Delta a_1^+ \Delta y} + m_{\Delta h_1^+ \Delta a_1^-} m_{\Delta a_1^- \Delta y}\big) \\
+{}& m_{\Delta x_1 \Delta h_1^-} \big(m_{\Delta h_1^- \Delta a_1^+} m_{\Delta a_1^+ \Delta y} + m_{\Delta h_1^- \Delta a_1^-} m_{\Delta a_1^- \Delta y}\big) \\
+{}& m_{\Delta x_1 \Delta h_2^+} \big(m_{\Delta h_2^+ \Delta a_2^+} m_{\Delta a_2^+ \Delta y} + m_{\Delta h_2^+ \Delta a_2^-} m_{\Delta a_2^- \Delta y}\big) \\
+{}& m_{\Delta x_1 \Delta h_2^-} \big(m_{\Delta h_2^- \Delta a_2^+} m_{\Delta a_2^+ \Delta y} + m_{\Delta h_2^- \Delta a_2^-} m_{\Delta a_2^- \Delta y}\big).
\end{aligned}$$

With the Rescale multipliers $m_{\Delta h_j^* \Delta a_j^+} = \mathbf{1}\{\Delta a_j > 0\}\, \Delta a_j / \Delta h_j$,
$m_{\Delta h_j^* \Delta a_j^-} = \mathbf{1}\{\Delta a_j < 0\}\, \Delta a_j / \Delta h_j$ and
$m_{\Delta a_j^\pm \Delta y} = \beta_j$, each bracket collapses to $(\Delta a_j / \Delta h_j)\, \beta_j$,
and the Linear multipliers
$\mathbf{1}\{w_{1j} \Delta x_1 > 0\}\, w_{1j} + \mathbf{1}\{w_{1j} \Delta x_1 < 0\}\, w_{1j} = w_{1j}$
(for $\Delta x_1 \ne 0$) restore the unsplit sum. Written out by hand, the four lines are easy to get
wrong: a common slip repeats $m_{\Delta x_1 \Delta h_2^+}$ in the fourth line where
$m_{\Delta x_1 \Delta h_2^-}$ belongs. Numbers, with $f = \tanh$ and reference 0, for the correct
sum and for the slip:
""")

code(r"""
Wh = np.array([[0.8, -1.2],      # Dense layout: Wh[j, i] = w_ij, the weight from x_i to h_j
               [-0.6, 0.9]])
bh = np.array([0.1, -0.2])
beta = np.array([1.3, -0.7])
x0, ref0 = np.array([1.5, -0.5]), np.zeros(2)

h, h_ref = Wh @ x0 + bh, Wh @ ref0 + bh
a, a_ref = np.tanh(h), np.tanh(h_ref)
dh, da, dx = h - h_ref, a - a_ref, x0 - ref0
ratio = da / dh                                   # Rescale multipliers Δa_j / Δh_j
print("Δh =", dh, " Δa =", da, " Δa/Δh =", ratio)

unsplit = Wh[:, 0] @ (ratio * beta)               # w_11 (Δa1/Δh1) β1 + w_12 (Δa2/Δh2) β2


def m_lin(w, delta, sign):                        # m_{Δx Δh±}: the Linear rule (Δx ≠ 0 here)
    return w * (w * delta > 0) if sign > 0 else w * (w * delta < 0)


def m_resc(j, sign):                              # m_{Δh_j* Δa_j±}: the Rescale rule
    return ratio[j] * (da[j] > 0) if sign > 0 else ratio[j] * (da[j] < 0)


def bracket(j, beta_j):                           # m_{Δhj* Δaj+} m_{Δaj+ Δy} + m_{Δhj* Δaj-} m_{Δaj- Δy}
    return m_resc(j, +1) * beta_j + m_resc(j, -1) * beta_j


lines = [m_lin(Wh[0, 0], dx[0], +1) * bracket(0, beta[0]),    # via h1+
         m_lin(Wh[0, 0], dx[0], -1) * bracket(0, beta[0]),    # via h1-
         m_lin(Wh[1, 0], dx[0], +1) * bracket(1, beta[1]),    # via h2+
         m_lin(Wh[1, 0], dx[0], -1) * bracket(1, beta[1])]    # via h2-
split = sum(lines)
slip = lines[0] + lines[1] + lines[2] + lines[2]              # the slip: h2+ again in the fourth line
print("four lines of the split sum:", np.array(lines))
print("m_{Δx1 Δy}: unsplit", unsplit, " split", split, " with the slip", slip)
""")

md(r"""
Split and unsplit agree to the last bit here. The slip is not harmless: here
$w_{12} \Delta x_1 = -0.6 \times 1.5 < 0$, so $m_{\Delta x_1 \Delta h_2^+} = 0$ and the repeated line
*drops* the path through $h_2$ (had $w_{12} \Delta x_1$ been positive it would have counted that
path twice). Completeness then fails:
""")

code(r"""
dy = beta @ a - beta @ a_ref
unsplit_x2 = Wh[:, 1] @ (ratio * beta)
print("Δy =", dy)
print("C_x1 + C_x2, correct :", unsplit * dx[0] + unsplit_x2 * dx[1])
print("C_x1 + C_x2, slip    :", slip * dx[0] + unsplit_x2 * dx[1])
example_net = Sequential([Dense(Wh, bh), Tanh(), Dense(beta[None, :])])
example_result = deeplift(example_net, x0[None, :], ref0, rule="rescale")
print("refattr values       :", example_result.values[0], " multipliers:", example_result.multipliers[0])
""")

md(r"""
## 5. Where RevealCancel differs from Rescale, and why

Rescale looks only at the total $\Delta h$ of a nonlinearity's input. When positive and negative
inputs cancel, the total can land where $f$ is flat, and every input then gets nothing, although
each one alone would have moved the output. RevealCancel (section 3.5.3) treats the positive part
$\Delta h^+$ and the negative part $\Delta h^-$ as two players and gives each its Shapley value in
the game $v(S) = f(h' + \sum_{p \in S} \Delta h_p) - f(h')$:

$$\begin{aligned}
\Delta a^+ &= \tfrac12 \big[f(h' + \Delta h^+) - f(h')\big] + \tfrac12 \big[f(h' + \Delta h^- + \Delta h^+) - f(h' + \Delta h^-)\big], \\
\Delta a^- &= \tfrac12 \big[f(h' + \Delta h^-) - f(h')\big] + \tfrac12 \big[f(h' + \Delta h^+ + \Delta h^-) - f(h' + \Delta h^+)\big],
\end{aligned}$$

with multipliers $m^+ = \Delta a^+ / \Delta h^+$ and $m^- = \Delta a^- / \Delta h^-$, which now differ.

**The paper's min example** (figure 3): $\min(i_1, i_2) = i_1 - \operatorname{relu}(i_1 - i_2)$,
reference 0. As a sequential network the pass-through of $i_1$ is
$\operatorname{relu}(i_1) - \operatorname{relu}(-i_1)$. At $(i_1, i_2) = (3, 1)$ the hidden unit
$i_1 - i_2$ has $\Delta h^+ = 3$ (from $i_1$) and $\Delta h^- = -1$ (from $i_2$):

$$\begin{aligned}
\Delta a^+ &= \tfrac12 \big(\operatorname{relu}(3) - \operatorname{relu}(0)\big) + \tfrac12 \big(\operatorname{relu}(2) - \operatorname{relu}(-1)\big) = 2.5, & m^+ &= 2.5 / 3 = 5/6, \\
\Delta a^- &= \tfrac12 \big(\operatorname{relu}(-1) - \operatorname{relu}(0)\big) + \tfrac12 \big(\operatorname{relu}(2) - \operatorname{relu}(3)\big) = -0.5, & m^- &= -0.5 / -1 = 1/2,
\end{aligned}$$

so $C_{i_1} = 3\,(1 - 5/6) = 0.5$ and $C_{i_2} = 1 \times 1/2 = 0.5$: credit is shared, while Rescale
($\Delta a / \Delta h = 1$) gives $C = (0, 1)$, as the gradient does.
""")

code(r"""
min_net = Sequential([Dense([[1.0, 0.0], [-1.0, 0.0], [1.0, -1.0]]), ReLU(), Dense([[1.0, -1.0, -1.0]])])
pairs = np.array([[3.0, 1.0], [1.0, 3.0]])
print("min:", pairs.min(axis=1))
print("Rescale     :", deeplift(min_net, pairs, 0.0, rule="rescale").values.tolist())
print("RevealCancel:", deeplift(min_net, pairs, 0.0, rule="reveal_cancel").values.tolist())
layers_min = deeplift_layers(min_net, pairs[:1], 0.0, rule="reveal_cancel")
print("at the ReLU input, unit i1 - i2: Δh+ =", layers_min[1].delta_pos[0, 2], " Δh- =",
      layers_min[1].delta_neg[0, 2], " m+ =", layers_min[1].m_pos[0, 2], " m- =", layers_min[1].m_neg[0, 2])
""")

md(r"""
(The multipliers printed at the ReLU input include the output weight $-1$: $-5/6$ and $-1/2$.)

**A dense layer and a ReLU where the total cancels.** $y = \operatorname{relu}(2 x_1 - x_2 + x_3 - 1)$,
reference 0 ($h' = -1$), $x = (1, 2, 0.5)$: the terms are 2, $-2$ and 0.5, so $\Delta h^+ = 2.5$,
$\Delta h^- = -2$ and the total $\Delta h = 0.5$ leaves $h = -0.5$ in the flat part: $\Delta y = 0$.
Rescale gives every input 0. RevealCancel:

$$\begin{aligned}
\Delta y^+ &= \tfrac12 \big(\operatorname{relu}(1.5) - \operatorname{relu}(-1)\big) + \tfrac12 \big(\operatorname{relu}(-0.5) - \operatorname{relu}(-3)\big) = 0.75, & m^+ &= 0.3, \\
\Delta y^- &= \tfrac12 \big(\operatorname{relu}(-3) - \operatorname{relu}(-1)\big) + \tfrac12 \big(\operatorname{relu}(-0.5) - \operatorname{relu}(1.5)\big) = -0.75, & m^- &= 0.375,
\end{aligned}$$

so $C = (2 \times 0.3,\; -2 \times 0.375,\; 0.5 \times 0.3) = (0.6, -0.75, 0.15)$: $x_1$ and $x_3$
pushed the unit up, $x_2$ cancelled them, and the attribution says so while still summing to
$\Delta y = 0$.
""")

code(r"""
cancel_net = Sequential([Dense([[2.0, -1.0, 1.0]], [-1.0]), ReLU()])
x_cancel = np.array([[1.0, 2.0, 0.5]])
print("Rescale     :", deeplift(cancel_net, x_cancel, 0.0, rule="rescale").values[0])
rc = deeplift(cancel_net, x_cancel, 0.0, rule="reveal_cancel")
print("RevealCancel:", rc.values[0], " multipliers:", rc.multipliers[0], " sum:", rc.values.sum())
""")

md(r"""
## 6. RevealCancel with a non-monotonic activation: what are $C_{\Delta x^- \Delta y^+}$ and $C_{\Delta x^+ \Delta y^-}$?

The paper introduces RevealCancel for monotonic activations. What does it assign to the cross terms
$C_{\Delta x^- \Delta y^+}$ and $C_{\Delta x^+ \Delta y^-}$ when $f$ is not monotonic (swish,
$s(x) = x\,\sigma(x)$, which falls to a minimum at $x = -1.2785$ and rises after)?

**They are zero, by definition, for any $f$.** RevealCancel does not split $\Delta y$ by sign. It
defines $\Delta y^+$ as the Shapley value of the player "$\Delta x^+$" and $\Delta y^-$ as that of the
player "$\Delta x^-$" in the two-player game above. $\Delta y^+$ *is* $\Delta x^+$'s contribution, so
$C_{\Delta x^+ \Delta y^+} = \Delta y^+$ and $C_{\Delta x^- \Delta y^+} = 0$; likewise
$C_{\Delta x^- \Delta y^-} = \Delta y^-$, $C_{\Delta x^+ \Delta y^-} = 0$. Efficiency of the Shapley
value gives $\Delta y^+ + \Delta y^- = f(x' + \Delta x^+ + \Delta x^-) - f(x') = \Delta y$, so
summation-to-delta holds. Monotonicity is never used. What changes for a non-monotonic $f$ is the
*sign*: $\Delta y^+$ can be negative (a positive change of the input that lowers the output) and
$\Delta y^-$ positive. The superscripts name the player, not the sign of the output part. (For a
monotonic increasing $f$ every divided difference is $\ge 0$, so $\Delta y^+ \ge 0 \ge \Delta y^-$
and the two readings coincide.)

Numbers: a swish unit with reference input $h' = -3$ and parts $\Delta h^+ = 2.5$, $\Delta h^- = -1$
($h = -1.5$):
""")

code(r"""
s = lambda z: z / (1.0 + np.exp(-z))
h_ref_s, p, n = -3.0, 2.5, -1.0
dy_plus = 0.5 * (s(h_ref_s + p) - s(h_ref_s)) + 0.5 * (s(h_ref_s + n + p) - s(h_ref_s + n))
dy_minus = 0.5 * (s(h_ref_s + n) - s(h_ref_s)) + 0.5 * (s(h_ref_s + p + n) - s(h_ref_s + p))
print("s(-3), s(-0.5), s(-4), s(-1.5):", s(-3.0), s(-0.5), s(-4.0), s(-1.5))
print("Δy+ =", dy_plus, "(negative: raising h from -3 or from -4 lowers swish here)")
print("Δy- =", dy_minus)
print("Δy+ + Δy- =", dy_plus + dy_minus, " s(h) - s(h') =", s(-1.5) - s(-3.0))
print("m+ = Δy+/Δh+ =", dy_plus / p, " m- = Δy-/Δh- =", dy_minus / n)
""")

md(r"""
Contrast the sign-based split often written for Rescale, $\Delta y^+ = \mathbf{1}\{\Delta y > 0\}\, \Delta y$:
here $\Delta y < 0$, so $\Delta y^+ = 0$ and all of $\Delta y$ goes to $\Delta y^-$, including
$C_{\Delta x^+ \Delta y^-} = (\Delta y / \Delta x)\, \Delta x^+ \ne 0$, a genuine cross term.
RevealCancel keeps each part in its own half and lets the half carry either sign. The same unit in
refattr: a Dense layer adds $x_1 + x_2$ with reference $(-3, 0)$ and input $(-0.5, -1)$, so the Linear
rule hands the swish $\Delta h^+ = 2.5$ (from $x_1$) and $\Delta h^- = -1$ (from $x_2$):
""")

code(r"""
swish_net = Sequential([Dense([[1.0, 1.0]]), Swish()])
x_s, ref_s = np.array([[-0.5, -1.0]]), np.array([-3.0, 0.0])
layers_s = deeplift_layers(swish_net, x_s, ref_s, rule="reveal_cancel")
print("swish input parts :", layers_s[1].delta_pos[0, 0], layers_s[1].delta_neg[0, 0])
print("swish output parts:", layers_s[2].delta_pos[0, 0], layers_s[2].delta_neg[0, 0])
print("contributions C_x1, C_x2:", layers_s[0].contributions[0])
rescale_s = deeplift(swish_net, x_s, ref_s, rule="rescale").values[0]
print("Rescale for comparison  :", rescale_s, "(both inputs scaled by the one ratio Δy/Δh)")
""")

md(r"""
## 7. Divided differences without a threshold

Rescale's multiplier $\Delta y / \Delta x$ is a divided difference, and as $\Delta x \to 0$ it tends to
$f'(x')$. Computed naively as $(f(x' + \Delta x) - f(x')) / \Delta x$ it loses about
$\log_{10}(1/|\Delta x|)$ digits to cancellation, even when $f$ itself is correctly rounded; peers therefore switch to the gradient below a
threshold (Captum: $|\Delta x| < 10^{-10}$, using $f'$ at the input; the original DeepLIFT code:
$10^{-7}$), which is a discontinuity of its own. refattr evaluates each $f$'s divided difference in a
form with no cancellation, e.g. for tanh

$$\frac{\tanh b - \tanh a}{b - a} = \frac{\sinh(b - a)}{(b - a) \cosh a \cosh b},$$

arranged so that nothing overflows, and needs no threshold (its tests hold it to $10^{-13}$ relative
to mpmath, down to $|\Delta x| = 10^{-15}$ and out to $|x| = 700$):
""")

code(r"""
import mpmath

a0 = 0.7
exact = 1.0 / np.cosh(a0) ** 2                 # tanh'(x'), the limit
for step in (1e-4, 1e-8, 1e-12, 1e-15):
    with mpmath.workdps(60):                    # 60 digits: the true secant, and tanh correctly rounded
        true = (mpmath.tanh(mpmath.mpf(a0) + mpmath.mpf(step)) - mpmath.tanh(a0)) / mpmath.mpf(step)
        tanh_b, tanh_a = float(mpmath.tanh(a0 + step)), float(mpmath.tanh(a0))
    naive = (tanh_b - tanh_a) / step            # even with a correctly rounded tanh, the subtraction cancels
    stable = float(tanh_secant(np.array(a0), np.array(step)))
    print(f"Δx = {step:.0e}: relative error naive {float(abs(naive / true - 1)):.1e}, "
          f"stable {float(abs(stable / true - 1)):.1e}")
""")

md(r"""
## 8. Summation-to-delta at every layer

`deeplift_layers` reports, for the input and for the output of every layer, the parts $\Delta^+$ and
$\Delta^-$, the multipliers and the contributions $m^+ \Delta^+ + m^- \Delta^-$. Each layer's
contributions sum to $\Delta t$. On a random network mixing convolutions, pooling and every
registered activation:
""")

code(r"""
rng = np.random.default_rng(7)
net = random_network(rng, input_shape=(2, 6, 6), n_layers=5)
x_r = rng.normal(size=(2, 2, 6, 6))
ref_r = rng.normal(size=(2, 2, 6, 6))
for rule in ("rescale", "reveal_cancel"):
    layers_r = deeplift_layers(net, x_r, ref_r, target=1, rule=rule, maxpool_rule="delta_routing")
    worst = max(float(np.abs(layer.completeness_gap).max()) for layer in layers_r)
    print(f"{rule}: {len(layers_r)} layers, largest |sum C - Δt| = {worst:.1e}")
""")

md(r"""
## 9. Assertions against the library
""")

code(r"""
# Linear rule: the four-way split sums to w·Δx, and matrix form equals the indicator form.
assert abs((dy_pos + dy_neg) - w @ d) < 1e-15
np.testing.assert_allclose(m, m_terms, rtol=1e-15)
# Chain rule on a linear network: multipliers are the product of the weights.
np.testing.assert_allclose(r.multipliers[0], (B @ A)[0], rtol=1e-13)
# One input: the multiplier is the secant slope computed by hand; the gradient is not.
for secant, multiplier in slopes.values():
    np.testing.assert_allclose(multiplier, secant, rtol=1e-14, atol=1e-15)
np.testing.assert_array_equal(gradient(saturation, [[2.0]]).values, [[0.0]])
np.testing.assert_allclose(deeplift(saturation, [[2.0]], 0.0).multipliers, [[0.5]], rtol=1e-15)
np.testing.assert_allclose(deeplift(threshold, [[4.0]], 0.0).multipliers, [[0.75]], rtol=1e-15)   # 1 - 1/4
# The two-layer example: split == unsplit under Rescale, the slip differs, refattr agrees.
assert abs(split - unsplit) <= 1e-15 * abs(unsplit)
assert abs(slip - unsplit) > 0.1
np.testing.assert_allclose(example_result.multipliers[0], [unsplit, unsplit_x2], rtol=1e-14)
np.testing.assert_allclose(example_result.values[0].sum(), dy, rtol=1e-14)
# RevealCancel vs Rescale on min(i1, i2) and on the cancelling ReLU (hand values above).
np.testing.assert_allclose(deeplift(min_net, pairs, 0.0, rule="reveal_cancel").values, [[0.5, 0.5], [0.5, 0.5]],
                           rtol=1e-15)
np.testing.assert_array_equal(deeplift(min_net, pairs, 0.0, rule="rescale").values, [[0.0, 1.0], [1.0, 0.0]])
np.testing.assert_allclose([layers_min[1].m_pos[0, 2], layers_min[1].m_neg[0, 2]], [-5 / 6, -0.5], rtol=1e-15)
np.testing.assert_allclose(rc.values[0], [0.6, -0.75, 0.15], rtol=1e-15)
# Swish: Δy+ < 0, no cross terms, and refattr's parts are the Shapley values computed by hand.
assert dy_plus < 0
np.testing.assert_allclose([layers_s[2].delta_pos[0, 0], layers_s[2].delta_neg[0, 0]], [dy_plus, dy_minus],
                           rtol=1e-13)
np.testing.assert_allclose(layers_s[0].contributions[0], [dy_plus, dy_minus], rtol=1e-13)
# Divided differences: the stable secant at Δx = 1e-15 is the true secant to rounding.
assert float(abs(stable / true - 1)) < 1e-14 and abs(stable / exact - 1) < 1e-14
# Summation-to-delta at every layer of the random network, both rules.
for rule in ("rescale", "reveal_cancel"):
    for layer in deeplift_layers(net, x_r, ref_r, target=1, rule=rule, maxpool_rule="delta_routing"):
        assert np.all(np.abs(layer.completeness_gap) < 1e-12)
print("all checks passed")
np.set_printoptions(**saved_print_options)
""")


if __name__ == "__main__":
    build(CELLS, "deeplift")
