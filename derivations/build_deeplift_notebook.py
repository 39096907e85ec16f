"""Write derivations/deeplift.ipynb from the cells below (run from the repository root).

The notebook is generated, not hand-edited: change the cells here and rerun
``python derivations/build_deeplift_notebook.py``. tests/derivations/test_notebooks.py executes it.
"""

import pathlib

from _notebook import NotebookCells, execute_in_place  # noqa: E402,F401  (run from derivations/)

CELLS = NotebookCells()
md, code = CELLS.md, CELLS.code


md(r"""
# DeepLIFT, derived and checked

DeepLIFT (Shrikumar, Greenside & Kundaje 2017) explains the difference Δt = t(x) - t(x') of one
output between an input x and a reference x'. Every neuron's difference from its reference
activation is split into a positive and a negative part, Δ = Δ+ + Δ-; *contributions*
C_{Δx Δt} are propagated so that they always add up to Δt (**summation-to-delta**), and
*multipliers* m_{Δx Δt} = C_{Δx Δt} / Δx obey a chain rule, so one backward pass computes them.

This notebook derives the rules refattr uses (SPEC section 6, the seed's "DeepLIFT" section),
works the seed's example network both split and unsplit, shows where RevealCancel and Rescale
part ways, answers the seed's open question about non-monotonic activations, and ends with
assertions against `refattr.methods.deeplift`.

| symbol | code | meaning |
| --- | --- | --- |
| x' | `baseline` | the reference input |
| Δx = x - x' | `delta` | difference from reference |
| Δx+, Δx- | `pos`, `neg` | the positive and negative parts (input layer: max(Δx, 0), min(Δx, 0)) |
| m+, m- | `m_pos`, `m_neg` | multipliers m_{Δx+ Δt}, m_{Δx- Δt} |
| C | `contributions` | C_{Δx Δt} = m+ Δx+ + m- Δx- |
""")

code(r"""
import numpy as np

from refattr import Dense, ReLU, Sequential, Swish, Tanh
from refattr.layers.activations import tanh_secant
from refattr.methods.deeplift import deeplift, deeplift_layers
from refattr.testing import random_network

np.set_printoptions(precision=6, suppress=True)
""")

md(r"""
## 1. The Linear rule: a four-way split and the 0.5 rule

Take one linear neuron y = b + Σ_i w_i x_i. Its difference from reference is linear,
Δy = Σ_i w_i Δx_i, and is split by the sign of each term:

    Δy+ = Σ_i 1{w_i Δx_i > 0} w_i Δx_i        Δy- = Σ_i 1{w_i Δx_i < 0} w_i Δx_i.

The sign that decides is that of the *total* Δx_i. Writing Δx_i = Δx_i+ + Δx_i- (the parts the
previous layer produced), each term splits four ways (Shrikumar et al. 2017, section 3.5.1):

    C_{Δx_i+ Δy+} = 1{w_i Δx_i > 0} w_i Δx_i+     C_{Δx_i- Δy+} = 1{w_i Δx_i > 0} w_i Δx_i-
    C_{Δx_i+ Δy-} = 1{w_i Δx_i < 0} w_i Δx_i+     C_{Δx_i- Δy-} = 1{w_i Δx_i < 0} w_i Δx_i-

so every multiplier into Δy+ is 1{w_i Δx_i > 0} w_i and every multiplier into Δy- is
1{w_i Δx_i < 0} w_i, whichever part of x_i it applies to. A neuron with Δx_i == 0 exactly has no
sign; the **0.5 rule** sends it to both halves with weight 0.5 w_i. Its contribution is zero
either way, but its multipliers are not, and they matter whenever its *parts* are non-zero
(RevealCancel can produce Δx+ = -Δx- ≠ 0) or it sits above a layer whose Δ is not zero.

An example with four inputs; input 0 arrives with parts (1.5, -0.5) (total 1), input 3 with
total 0 but parts (0.4, -0.4):
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
Input 0 feeds Δy+ (w Δx = 2 > 0) with *both* of its parts: its negative part contributes
C_{Δx- Δy+} = -1 to the positive half. The Linear rule has cross terms; it is the element-wise
rules below that keep each part in its own half. Input 3 (total 0) feeds both halves with
0.5 w = 1.5 per unit, and its contributions cancel within each half.

The four sums regroup as the seed says: C_{Δx_i+ Δy} = w_i Δx_i+, C_{Δx_i Δy+} = Δy+'s share,
and C_{Δx_i Δy} = w_i Δx_i in every grouping. For a layer with weight matrix W this needs no
per-example masking. With W+ = max(W, 0), W- = min(W, 0) and the total's parts
Δx^> = max(Δx, 0), Δx^< = min(Δx, 0):

    Δy+ = W+ Δx^> + W- Δx^<        Δy- = W- Δx^> + W+ Δx^<

(a weight and a difference of equal signs make a positive term), and backwards, for the
multipliers M+ and M- of Δy+ and Δy-, input i receives W+^T M+ + W-^T M- if Δx_i > 0,
W-^T M+ + W+^T M- if Δx_i < 0, and the mean of the two if Δx_i == 0. The input's two parts get
the *same* multiplier.
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

A multiplier is a contribution per unit of difference, m_{Δx Δy} = C_{Δx Δy} / Δx, a
finite-difference analogue of a partial derivative. If x reaches t only through y_1, ..., y_n,
the chain rule for multipliers (section 3.2)

    m_{Δx Δt} = Σ_j m_{Δx Δy_j} m_{Δy_j Δt}
              = Σ_j Σ_{* ∈ {+,-}} m_{Δx Δy_j*} m_{Δy_j* Δt}      (split form)

is what makes contributions add up layer after layer: with C_{Δx Δt} = m_{Δx Δt} Δx,

    Σ_x C_{Δx Δt} = Σ_j m_{Δy_j Δt} Σ_x m_{Δx Δy_j} Δx = Σ_j m_{Δy_j Δt} Δy_j = Σ_j C_{Δy_j Δt} = Δt,

using summation-to-delta for each y_j (Σ_x C_{Δx Δy_j} = Δy_j) and then for the y layer. So a
backward pass that multiplies by each layer's multipliers instead of its Jacobian computes every
m_{Δx Δt} at once, as backpropagation computes gradients. For purely linear layers the multipliers *are* the weights
and the chain rule is the matrix product:
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
## 3. The seed's worked example, split and unsplit

The seed's network: two inputs, a linear layer h_j = b_j + Σ_i w_ij x_i, an element-wise
a_j = f(h_j), and y = β_1 a_1 + β_2 a_2. Under the Rescale rule, the element-wise multiplier is
the divided difference m_{Δh_j Δa_j} = Δa_j / Δh_j for both halves; it is sign-blind.

Unsplit, the chain rule gives

    m_{Δx1 Δy} = w_11 (Δa_1 / Δh_1) β_1 + w_12 (Δa_2 / Δh_2) β_2.

Split, x_1 reaches y through h_1+, h_1-, h_2+, h_2-, each then through a_j+ and a_j-:

    m_{Δx1 Δy} = m_{Δx1 Δh1+} (m_{Δh1+ Δa1+} m_{Δa1+ Δy} + m_{Δh1+ Δa1-} m_{Δa1- Δy})
               + m_{Δx1 Δh1-} (m_{Δh1- Δa1+} m_{Δa1+ Δy} + m_{Δh1- Δa1-} m_{Δa1- Δy})
               + m_{Δx1 Δh2+} (m_{Δh2+ Δa2+} m_{Δa2+ Δy} + m_{Δh2+ Δa2-} m_{Δa2- Δy})
               + m_{Δx1 Δh2-} (m_{Δh2- Δa2+} m_{Δa2+ Δy} + m_{Δh2- Δa2-} m_{Δa2- Δy})

(the seed's fourth line repeats m_{Δx1 Δh2+}; SPEC section 9 corrects it to m_{Δx1 Δh2-}).
With the Rescale multipliers m_{Δhj* Δaj+} = 1{Δa_j > 0} Δa_j/Δh_j, m_{Δhj* Δaj-} =
1{Δa_j < 0} Δa_j/Δh_j, m_{Δaj± Δy} = β_j, each bracket collapses to (Δa_j / Δh_j) β_j, and the
Linear multipliers 1{w_1j Δx_1 > 0} w_1j + 1{w_1j Δx_1 < 0} w_1j = w_1j (for Δx_1 ≠ 0) restore
the unsplit sum. Numbers, with f = tanh and reference 0:
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
         m_lin(Wh[1, 0], dx[0], -1) * bracket(1, beta[1])]    # via h2- (corrected)
split = sum(lines)
typo = lines[0] + lines[1] + lines[2] + lines[2]              # the seed's fourth line: h2+ again
print("four lines of the split sum:", np.array(lines))
print("m_{Δx1 Δy}: unsplit", unsplit, " split", split, " with the seed's typo", typo)
""")

md(r"""
Split and unsplit agree to the last bit here. The typo'd formula is not a harmless slip: here
w_12 Δx_1 = -0.6 × 1.5 < 0, so m_{Δx1 Δh2+} = 0 and the repeated line *drops* the path through h_2
(had w_12 Δx_1 been positive it would have counted that path twice). Completeness then fails:
""")

code(r"""
dy = beta @ a - beta @ a_ref
unsplit_x2 = Wh[:, 1] @ (ratio * beta)
print("Δy =", dy)
print("C_x1 + C_x2, correct :", unsplit * dx[0] + unsplit_x2 * dx[1])
print("C_x1 + C_x2, typo    :", typo * dx[0] + unsplit_x2 * dx[1])
seed_net = Sequential([Dense(Wh, bh), Tanh(), Dense(beta[None, :])])
seed_result = deeplift(seed_net, x0[None, :], ref0, rule="rescale")
print("refattr values       :", seed_result.values[0], " multipliers:", seed_result.multipliers[0])
""")

md(r"""
## 4. Where RevealCancel differs from Rescale, and why

Rescale looks only at the total Δh of a nonlinearity's input. When positive and negative inputs
cancel, the total can land where f is flat, and every input then gets nothing, although each one
alone would have moved the output. RevealCancel (section 3.5.3) treats the positive part Δh+ and
the negative part Δh- as two players and gives each its Shapley value in the game
v(S) = f(h' + Σ_{p ∈ S} Δh_p) - f(h'):

    Δa+ = ½ [f(h' + Δh+) - f(h')] + ½ [f(h' + Δh- + Δh+) - f(h' + Δh-)]
    Δa- = ½ [f(h' + Δh-) - f(h')] + ½ [f(h' + Δh+ + Δh-) - f(h' + Δh+)]

with multipliers m+ = Δa+ / Δh+ and m- = Δa- / Δh-, which now differ.

**The paper's min example** (figure 3): min(i1, i2) = i1 - relu(i1 - i2), reference 0. As a
sequential network the pass-through of i1 is relu(i1) - relu(-i1). At (i1, i2) = (3, 1) the
hidden unit i1 - i2 has Δh+ = 3 (from i1) and Δh- = -1 (from i2):

    Δa+ = ½ (relu(3) - relu(0)) + ½ (relu(2) - relu(-1)) = 2.5,   m+ = 2.5 / 3 = 5/6
    Δa- = ½ (relu(-1) - relu(0)) + ½ (relu(2) - relu(3)) = -0.5,  m- = -0.5 / -1 = 1/2

so C_i1 = 3 (1 - 5/6) = 0.5 and C_i2 = 1 × 1/2 = 0.5: credit is shared, while Rescale (Δa/Δh = 1)
gives C = (0, 1), as the gradient does.
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
(The multipliers printed at the ReLU input include the output weight -1: -5/6 and -1/2.)

**A dense layer and a ReLU where the total cancels.** y = relu(2 x1 - x2 + x3 - 1), reference 0
(h' = -1), x = (1, 2, 0.5): the terms are 2, -2 and 0.5, so Δh+ = 2.5, Δh- = -2 and the total
Δh = 0.5 leaves h = -0.5 in the flat part: Δy = 0. Rescale gives every input 0. RevealCancel:

    Δy+ = ½ (relu(1.5) - relu(-1)) + ½ (relu(-0.5) - relu(-3)) = 0.75,   m+ = 0.3
    Δy- = ½ (relu(-3) - relu(-1)) + ½ (relu(-0.5) - relu(1.5)) = -0.75,  m- = 0.375

so C = (2 × 0.3, -1 × 0.375 × 2, 0.3 × 0.5) = (0.6, -0.75, 0.15): x1 and x3 pushed the unit up,
x2 cancelled them, and the attribution says so while still summing to Δy = 0.
""")

code(r"""
cancel_net = Sequential([Dense([[2.0, -1.0, 1.0]], [-1.0]), ReLU()])
x_cancel = np.array([[1.0, 2.0, 0.5]])
print("Rescale     :", deeplift(cancel_net, x_cancel, 0.0, rule="rescale").values[0])
rc = deeplift(cancel_net, x_cancel, 0.0, rule="reveal_cancel")
print("RevealCancel:", rc.values[0], " multipliers:", rc.multipliers[0], " sum:", rc.values.sum())
""")

md(r"""
## 5. The seed's open question: C_{Δx- Δy+} for a non-monotonic f

The seed asks how RevealCancel would assign C_{Δx- Δy+} and C_{Δx+ Δy-} when f is not monotonic
(swish, s(x) = x σ(x), which falls to a minimum at x = -1.2785 and rises after).

**Answer: they are zero, by definition, for any f.** RevealCancel does not split Δy by sign.
It defines Δy+ as the Shapley value of the player "Δx+" and Δy- as that of the player "Δx-" in
the two-player game above. Δy+ *is* Δx+'s contribution, so C_{Δx+ Δy+} = Δy+ and C_{Δx- Δy+} = 0;
likewise C_{Δx- Δy-} = Δy-, C_{Δx+ Δy-} = 0. Efficiency of the Shapley value gives
Δy+ + Δy- = f(x' + Δx+ + Δx-) - f(x') = Δy, so summation-to-delta holds. Monotonicity is never
used. What changes for a non-monotonic f is the *sign*: Δy+ can be negative (a positive change of
the input that lowers the output) and Δy- positive. The superscripts name the player, not the
sign of the output part. (For a monotonic increasing f every divided difference is >= 0, so
Δy+ >= 0 >= Δy- and the two readings coincide.)

Numbers: a swish unit with reference input h' = -3 and parts Δh+ = 2.5, Δh- = -1 (h = -1.5):
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
Contrast the sign-based split the seed writes for Rescale, Δy+ = 1{Δy > 0} Δy: here Δy < 0, so
Δy+ = 0 and all of Δy goes to Δy-, including C_{Δx+ Δy-} = (Δy/Δx) Δx+ ≠ 0, a genuine cross term
(the seed's note after the Rescale rule). RevealCancel keeps each part in its own half and lets
the half carry either sign. The same unit in refattr: a Dense layer adds x1 + x2 with reference
(-3, 0) and input (-0.5, -1), so the Linear rule hands the swish Δh+ = 2.5 (from x1) and
Δh- = -1 (from x2):
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
## 6. Divided differences without a threshold

Rescale's multiplier Δy/Δx is a divided difference, and as Δx -> 0 it tends to f'(x'). Computed
naively as (f(x' + Δx) - f(x')) / Δx it loses about log10(1/|Δx|) digits to cancellation; peers
therefore switch to the gradient below a threshold (Captum: |Δx| < 1e-10, using f' at the input;
the original DeepLIFT code: 1e-7), which is a discontinuity of its own. refattr evaluates each
f's divided difference in a form with no cancellation, e.g. for tanh

    (tanh b - tanh a) / (b - a) = sinh(b - a) / ((b - a) cosh a cosh b),

arranged so that nothing overflows, and needs no threshold (tests hold it to 1e-13 relative to
mpmath, down to |Δx| = 1e-15 and out to |x| = 700):
""")

code(r"""
import mpmath

a0 = 0.7
exact = 1.0 / np.cosh(a0) ** 2                 # tanh'(x'), the limit
for step in (1e-4, 1e-8, 1e-12, 1e-15):
    with mpmath.workdps(60):                    # the true secant of the two floats, 60 digits
        true = (mpmath.tanh(mpmath.mpf(a0) + mpmath.mpf(step)) - mpmath.tanh(a0)) / mpmath.mpf(step)
    naive = (np.tanh(a0 + step) - np.tanh(a0)) / step
    stable = float(tanh_secant(np.array(a0), np.array(step)))
    print(f"Δx = {step:.0e}: relative error naive {float(abs(naive / true - 1)):.1e}, "
          f"stable {float(abs(stable / true - 1)):.1e}")
""")

md(r"""
## 7. Summation-to-delta at every layer

`deeplift_layers` reports, for the input and for the output of every layer, the parts Δ+ and
Δ-, the multipliers and the contributions m+ Δ+ + m- Δ-. Each layer's contributions sum to Δt.
On a random network mixing convolutions, pooling and all four activations:
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
## 8. Assertions against the library
""")

code(r"""
# Linear rule: the four-way split sums to w·Δx, and matrix form equals the indicator form.
assert abs((dy_pos + dy_neg) - w @ d) < 1e-15
np.testing.assert_allclose(m, m_terms, rtol=1e-15)
# Chain rule on a linear network: multipliers are the product of the weights.
np.testing.assert_allclose(r.multipliers[0], (B @ A)[0], rtol=1e-13)
# The seed's example: split == unsplit under Rescale, the typo differs, refattr agrees.
assert abs(split - unsplit) <= 1e-15 * abs(unsplit)
assert abs(typo - unsplit) > 0.1
np.testing.assert_allclose(seed_result.multipliers[0], [unsplit, unsplit_x2], rtol=1e-14)
np.testing.assert_allclose(seed_result.values[0].sum(), dy, rtol=1e-14)
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
""")


if __name__ == "__main__":
    CELLS.write(pathlib.Path(__file__).resolve().parent / "deeplift.ipynb", "deeplift")
