"""Importers (PyTorch, ONNX) and the comparison of other libraries against the reference.

Nothing here imports torch, onnx, onnxruntime or captum at module level: each is imported inside
the function that needs it, and a missing one raises an ImportError that says what to install
(``pip install torch==2.13.0 captum==0.9.0 onnx onnxruntime``). ``import refattr`` never imports
this package.

- :func:`from_torch`, :func:`to_torch` (``torch_model.py``): ``nn.Sequential`` <-> :class:`refattr.Sequential`;
  any other module torch.fx can trace -> :class:`refattr.Graph` (``torch_fx.py``), and a Graph -> a
  torch module (``torch_graph.py``).
- :func:`from_onnx` (``onnx_model.py``): an ONNX graph -> :class:`refattr.Sequential` (a chain) or
  :class:`refattr.Graph`.
- :func:`compare_captum`, :func:`compare_attributions`, :class:`Report` (``compare.py``): diffs with
  every difference classified as rounding, a documented convention, the peer's approximation
  error, a known peer bug (named with its issue and sized), or unexplained; the report's summary
  says whether the peer's results are correct.
- :func:`compare_captum_layer` (``compare_layers.py``): Captum's layer and neuron methods
  (LayerIntegratedGradients, LayerConductance, LayerGradientXActivation, LayerDeepLift,
  NeuronGradient, NeuronIntegratedGradients, NeuronDeepLift) against refattr's, with the same
  classification.
- :func:`compare_shap` (``compare_shap.py``): SHAP's DeepExplainer and GradientExplainer graded
  the same way; SHAP's rules reproduced in ``shap_conventions.py``.
- :func:`compare_tangermeme` (``compare_tangermeme.py``): tangermeme's ``deep_lift_shap`` graded per
  (sequence, reference) pair on multipliers, contributions, hypothetical and projected contributions;
  its rules reproduced in ``tangermeme_conventions.py``.
- :func:`trace_delta` (``delta_trace.py``): where Captum's DeepLift convergence delta comes from,
  summation-to-delta at every cut under Captum's rules replayed in float64, the first layer that
  breaks it, the rule and the cells responsible, and what float32 adds.
- ``captum_conventions.py``: Captum's conventions reproduced with refattr's own gradients and
  layers, so that a diff can tell "different convention" from "numerical error". refattr's
  reference results never imitate them.
"""

from .compare import (
    Cause as Cause,
    MethodComparison as MethodComparison,
    Report as Report,
    compare_attributions as compare_attributions,
    compare_captum as compare_captum,
)
from .compare_layers import compare_captum_layer as compare_captum_layer
from .compare_shap import compare_shap as compare_shap
from .compare_tangermeme import compare_tangermeme as compare_tangermeme
from .delta_trace import trace_delta as trace_delta
from .onnx_model import from_onnx as from_onnx, onnx_forward as onnx_forward
from .torch_model import from_torch as from_torch, to_torch as to_torch, torch_forward as torch_forward

__all__ = ["from_torch", "to_torch", "torch_forward", "from_onnx", "onnx_forward", "compare_captum", "compare_captum_layer",
           "compare_shap", "compare_tangermeme", "trace_delta",
           "compare_attributions", "Report", "MethodComparison", "Cause"]
