"""Shipped test helpers: tolerances, a gradient checker, random and hand-built networks.

Importable by other projects' test suites (refattr as a unit-test oracle).
"""

from .assertions import assert_attributions_close as assert_attributions_close
from .gradcheck import central_difference as central_difference, check_vjp as check_vjp
from .networks import random_network as random_network, random_cnn as random_cnn, random_mlp as random_mlp
from .tolerances import EXACT_RTOL as EXACT_RTOL, FD_RTOL as FD_RTOL

__all__ = ["assert_attributions_close", "central_difference", "check_vjp", "random_network", "random_cnn", "random_mlp",
           "EXACT_RTOL", "FD_RTOL"]
