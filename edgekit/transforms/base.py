"""Pass protocol, the pass registry and the equivalence-checked pipeline."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from edgekit.artifact import PassRecord
from edgekit.errors import TransformError
from edgekit.registry import Registry


class Pass(Protocol):
    name: str

    def __call__(self, model: Any, example: Any) -> int:
        """Rewrite `model` in place; return how many sites changed. `example` is an input batch."""
        ...


PASSES: Registry[Callable[[], Pass]] = Registry("deploy pass")
PASSES.register("strip_dropout", "edgekit.transforms.strip_dropout:StripDropout")
PASSES.register("reparameterize", "edgekit.transforms.reparameterize:TimmReparameterize")
PASSES.register("fold_batchnorm", "edgekit.transforms.fold_batchnorm:FoldBatchNorm")
PASSES.register("fold_layerscale", "edgekit.transforms.fold_layerscale:FoldLayerScale")
PASSES.register("bake_attention_bias", "edgekit.transforms.bake_attention_bias:BakeAttentionBias")
PASSES.register("broadcast_linear_attention",
                "edgekit.transforms.broadcast_linear_attention:BroadcastLinearAttention")
PASSES.register("split_large_depthwise",
                "edgekit.transforms.split_large_depthwise:SplitLargeDepthwise")

# Order matters: dropout out of the way first so producers feed norms/scales directly; timm's own
# hooks before our generic folds; biases baked before any graph capture (timm caches gathered
# biases on the module in eval mode, and a trace must not leave its value there); the LayerScale
# fold needs BN already folded into the producer.
DEFAULT_PASSES = ("strip_dropout", "reparameterize", "bake_attention_bias",
                  "broadcast_linear_attention", "fold_batchnorm", "fold_layerscale")
NO_REPARAM_PASSES = ("strip_dropout",)
# Runtime-specific rewrites, run on each format's own copy after the shared passes (and before
# int8 calibration): what is fast depends on the runtime's kernels. XNNPACK (LiteRT, ExecuTorch)
# has no fast depthwise kernel above 5×5 (see split_large_depthwise).
FORMAT_PASSES: dict[str, tuple[str, ...]] = {
    "tflite": ("split_large_depthwise",), "executorch": ("split_large_depthwise",)}


def _outputs(model: Any, inputs: Any) -> np.ndarray:
    import torch

    with torch.no_grad():
        out = model(inputs)
    if isinstance(out, (tuple, list)):
        out = out[0]
    return np.asarray(out.detach().float().cpu().numpy(), dtype=np.float64)


def _max_abs_change(before: np.ndarray, after: np.ndarray) -> float:
    """max|Δ| over finite outputs; NaN/Inf must stay exactly where they were. (A source model
    that already outputs NaN is not the pass's fault: validation reports it.)"""
    if after.shape != before.shape:
        return float("inf")
    finite = np.isfinite(before)
    if not np.array_equal(finite, np.isfinite(after)):
        return float("inf")
    return float(np.abs(after - before)[finite].max()) if finite.any() else 0.0


class DeployPipeline:
    """Runs passes in order; after each, max|Δ| on fixed inputs must stay within `rel_tol` of
    the output scale, else the pass is named in a TransformError."""

    def __init__(self, names: Sequence[str] = DEFAULT_PASSES, rel_tol: float = 1e-4) -> None:
        self.names = tuple(names)
        self.rel_tol = rel_tol

    def run(self, model: Any, check_inputs: Any,
            on_pass: Callable[[str], None] | None = None) -> list[PassRecord]:
        records: list[PassRecord] = []
        if not self.names:
            return records
        before = _outputs(model, check_inputs)
        finite = before[np.isfinite(before)]
        scale = max(float(np.abs(finite).max()) if finite.size else 0.0, 1e-12)
        for name in self.names:
            if on_pass:
                on_pass(name)
            pass_ = PASSES.get(name)()
            try:
                changed = pass_(model, check_inputs)
            except TransformError:
                raise
            except Exception as exc:  # noqa: BLE001 - name the pass for the user
                raise TransformError(f"deploy pass '{name}' failed: {type(exc).__name__}: {exc}",
                                     hint="rerun with --no-reparam to export without deploy "
                                          "passes, and report the model") from exc
            model.eval()
            after = _outputs(model, check_inputs)
            max_abs = _max_abs_change(before, after)
            max_rel = max_abs / scale
            if not np.isfinite(max_rel) or max_rel > self.rel_tol:
                raise TransformError(
                    f"deploy pass '{name}' changed the outputs: max|Δ| = {max_abs:.3g} "
                    f"({max_rel:.3g} of the output scale, tolerance {self.rel_tol:g})",
                    hint="rerun with --no-reparam, and report the model")
            records.append(PassRecord(name=name, changed=int(changed), max_abs=max_abs,
                                      max_rel=max_rel))
        return records
