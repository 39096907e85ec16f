"""Named float64 tolerances, each with the reason it has the size it has."""

#: Results that are exact up to rounding: a few hundred float64 operations, each off by at most
#: half an ulp (1.1e-16), accumulate to well under 1e-12 relative.
EXACT_RTOL = 1e-12

#: Central finite differences with step h have truncation error O(h^2 f''') and rounding error
#: O(eps / h); with h = 1e-5 on O(1) functions the total is around 1e-10 to 1e-9, so a relative
#: error below 1e-7 (the foundation issue's bar) leaves two orders of margin and still catches any
#: wrong derivative.
FD_RTOL = 1e-7

#: Central-difference step used by :func:`refattr.testing.central_difference`.
FD_STEP = 1e-5
