"""The property checks on graph networks: the searches include residual and gated graphs, a
violation found on a graph is a witness that survives JSON and is re-verified from it, and the
residual pair computes one function two ways.

Expected values come from the functions written out in the tests (closed forms) and from methods
called directly, not through refattr.axioms.
"""

import json

import numpy as np

from refattr import Add, Dense, Graph, ReLU, deeplift, gradient, integrated_gradients
from refattr.axioms import HOLDS, SPECS, check, network_from_layers, network_to_layers, recheck
from refattr.axioms import completeness
from refattr.axioms._core import Case, run_cases
from refattr.axioms.audit import witness_text
from refattr.axioms.networks import random_gated_graph, random_residual_graph, residual_pair


def test_the_completeness_search_includes_graphs_and_the_theorems_hold_on_them():
    for method in ("ig_exact", "deeplift_rescale", "deeplift_reveal_cancel"):
        result = check("completeness", method)
        kinds = dict(result.tried.kinds)
        assert result.verdict == HOLDS, (method, result.line)
        assert kinds["random residual ReLU graph"] == 6
        # exact IG does not apply to the smooth gate (skipped and said so); DeepLIFT does
        gated = kinds.get("random gated graph (tanh * sigmoid)", 0)
        assert gated == (0 if method == "ig_exact" else 6), (method, kinds)


def test_a_gradient_witness_on_a_graph_is_plain_data_and_rechecks():
    # f(x) = relu(x - 1) + x: a residual graph on which the gradient at x = 2, x' = 0 sums to
    # f'(2) = 2 while f(2) - f(0) = 1 + 2 = 3 (gap -1), so completeness fails there.
    net = Graph("x", [("h", Dense([[1.0]], [-1.0]), "x"), ("a", ReLU(), "h"), ("r", Add(), ("a", "x")),
                      ("y", Dense([[1.0]]), "r")])
    case = Case("residual", {"f": net}, np.array([[2.0]]), np.array([[0.0]]), note="residual graph")
    witness, _, _, _ = run_cases("completeness", SPECS["gradient"], iter([case]), completeness.evaluate)
    assert witness is not None
    assert witness.numbers["sum_of_attributions"] == 2.0 and witness.numbers["gap"] == -1.0
    plain = json.loads(json.dumps(witness.networks))           # plain data only: json refuses arrays
    assert plain["f"]["inputs"] == ["x"] and [n["name"] for n in plain["f"]["nodes"]] == ["h", "a", "r", "y"]
    again = network_from_layers(plain["f"])
    x = np.linspace(-2, 3, 11)[:, None]
    np.testing.assert_array_equal(again(x), np.maximum(x - 1, 0) + x)
    assert recheck(witness).violated
    assert "f = graph of x: h = Dense(weight=[[1]], bias=[-1])(x), a = ReLU(h), r = Add(a, x)" in witness_text(witness)


def test_the_residual_pair_is_one_function_and_the_gradient_methods_agree_on_it():
    rng = np.random.default_rng(5)
    graph, chain = residual_pair(rng, 3)
    w, v = graph.nodes[0].layer.weight, graph.nodes[3].layer.weight
    x, b = rng.normal(size=(7, 3)), rng.normal(size=(7, 3))
    closed = (np.maximum(x @ w.T, 0) + x) @ v.T                 # v . (relu(W x) + x)
    np.testing.assert_allclose(graph(x), closed, rtol=1e-14)
    np.testing.assert_allclose(chain(x), closed, rtol=1e-14)
    np.testing.assert_allclose(gradient(graph, x).values, gradient(chain, x).values, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(integrated_gradients(graph, x, b, rule="exact").values,
                               integrated_gradients(chain, x, b, rule="exact").values, rtol=1e-11, atol=1e-13)
    # Rescale: the skip path of the graph is linear (multiplier 1); in the chain
    # (relu(x) - relu(x')) / dx + (relu(-x) - relu(-x')) / dx = 1 too, so Rescale agrees as well.
    np.testing.assert_allclose(deeplift(graph, x, b).values, deeplift(chain, x, b).values, rtol=1e-12, atol=1e-14)
    assert check("implementation_invariance", "gradient").verdict == HOLDS


def test_graph_witness_networks_round_trip_bit_for_bit():
    rng = np.random.default_rng(2)
    for net in (random_residual_graph(rng, 4), random_gated_graph(rng, 4, 5)):
        again = network_from_layers(json.loads(json.dumps(network_to_layers(net))))
        x = rng.normal(size=(5, 4))
        np.testing.assert_array_equal(again(x), net(x))
