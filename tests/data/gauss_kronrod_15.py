"""Gauss-Kronrod 7-15 nodes and weights on [-1, 1] in 40-digit arithmetic (mpmath), the source of
the constants in refattr/methods/_adaptive.py. The 8 Kronrod nodes are the roots of the Stieltjes
polynomial E_8 (orthogonal to x^k P_7 for k < 8); the weights make the 15-point rule exact to
degree 14 by construction (and so to degree 22). Run: python tests/data/gauss_kronrod_15.py"""
import mpmath as mp
mp.mp.dps = 40
n = 7
P7 = lambda x: mp.legendre(n, x)
def mom(m):   # int_{-1}^{1} x^m P_7(x) dx exactly through the polynomial coefficients
    c = mp.taylor(P7, 0, n)
    return sum(c[j] * (2 / mp.mpf(m + j + 1)) for j in range(n + 1) if (m + j) % 2 == 0)
# monic E_8 = x^8 + sum_{j<8} a_j x^j orthogonal to x^k P_7, k = 0..7
A = mp.matrix(8, 8); b = mp.matrix(8, 1)
for k in range(8):
    for j in range(8):
        A[k, j] = mom(j + k)
    b[k] = -mom(8 + k)
a = mp.lu_solve(A, b)
coeffs = [1] + [a[j] for j in reversed(range(8))]
ext = sorted(mp.re(r) for r in mp.polyroots(coeffs, maxsteps=200, extraprec=200))
gauss = sorted(mp.re(r) for r in mp.polyroots(mp.taylor(P7, 0, n)[::-1], maxsteps=200, extraprec=200))
nodes = sorted(ext + gauss)
V = mp.matrix(15, 15); rhs = mp.matrix(15, 1)
for i in range(15):
    for j, x in enumerate(nodes):
        V[i, j] = x ** i
    rhs[i] = 0 if i % 2 else mp.mpf(2) / (i + 1)
wk = mp.lu_solve(V, rhs)
Vg = mp.matrix(7, 7); rg = mp.matrix(7, 1)
for i in range(7):
    for j, x in enumerate(gauss):
        Vg[i, j] = x ** i
    rg[i] = 0 if i % 2 else mp.mpf(2) / (i + 1)
wg = mp.lu_solve(Vg, rg)
for x, w in zip(nodes, wk):
    print(mp.nstr(x, 30), mp.nstr(w, 30))
print("gauss")
for x, w in zip(gauss, wg):
    print(mp.nstr(x, 30), mp.nstr(w, 30))
