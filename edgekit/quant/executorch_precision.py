"""ExecuTorch precision modes besides fp32 and static int8 (quant/targets.py), on XNNPACK.

Both return the module ExecuTorchExporter.export lowers (torch.export ->
to_edge_transform_and_lower(XnnpackPartitioner) -> .pte) and details for the manifest.

fp16 (`prepare_fp16`). ExecuTorch has no fp16 switch for XNNPACK (the `force_fp16` partitioner
option is Vulkan's): its XNNPACK delegate computes in fp16 where the graph's tensors are fp16, so
the model is converted with `.half()` inside a wrapper that takes and returns float32. What the
XNNPACK partitioner does with it (executorch 1.5.1, measured on LeViT-128S, EfficientFormer-L1,
FastViT-T8):
- every op it delegates in fp32 it delegates in fp16, but for GELU (GeluConfig: "XNNPACK does not
  support GELU for fp16"); exact GELU would run on the portable kernel and split the delegate at
  every block, so GELU modules become XnnpackGelu (the tanh form, from ops XNNPACK runs in fp16);
- casts stay on portable kernels (it delegates no dtype conversion): the input's, the output's,
  one per fp32 scalar constant (an attention scale), two per fp32 island;
- LayerNorm, on the portable kernel in fp32 too, is kept in fp32 (`FP32_ISLAND_WHY`: ExecuTorch's
  fp16 layer_norm kernel is wrong from 256 channels up);
- conv weights are serialized in fp32 (op_conv2d.py `force_fp32=True`; XNNPACK packs them to
  fp16 at load), linear weights in fp16: the .pte shrinks with the linears only.
On x86-64 without AVX512-FP16, XNNPACK stores fp16 and computes in fp32 (its f16_f32acc GEMMs,
F16C conversions): the host measures fp16 storage rounding and is slower than fp32. ARMv8.2-A
cores with FP16 arithmetic (Cortex-A76 on the emulated device) compute in fp16.

w8 (`prepare_w8`). XNNPACK's int8-weight GEMMs in ExecuTorch are dynamically quantized (qd8 ×
qc8w): int8 per-channel symmetric weights, activations quantized to int8 on every inference
from their own range — per row for a linear, per image for a conv (node_visitor.py: "We use
per_token quantization for per_tensor quantization"; the PT2E graph simulates per tensor, which
is coarser, so its cosine is a lower bound). It has no weight-only path: a float-activation
GEMM with a dequantized weight is read as static int8 and refused ("Expected act input to be
dequant node"), and its dequantize would be left to the portable kernels. Quantized: linear and
2D non-depthwise conv. Stays fp32: depthwise conv (ConvolutionConfig: "XNNPACK only supports
standard 2D convolutions for dynamic quantization"; a 1-input-channel conv counts as depthwise),
conv1d, activation × activation matmuls (BMMConfig: fp32 only), GEMMs whose weight is computed,
and by default the stem's shallow spatial convs: a conv's input gets one range per image, and
on trained models those convs alone took the min logit cosine under 0.999.

w8a16: refused (`W8A16_REFUSAL`).
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from typing import Any

import numpy as np
import torch
from torch import nn

from edgekit.errors import ExportError

FP16_SCHEME = ("XNNPACK fp16: the model's weights and activations in float16 inside the "
               "delegate, float32 input and output")
W8_SCHEME = ("XNNPACK dynamic quantization (qd8 × qc8w): int8 per-channel symmetric weights, "
             "activations quantized to int8 per inference (per row / per image)")

# Why an op stays on ExecuTorch's portable kernels in the fp16 program (XNNPACK's partitioner).
FP16_PORTABLE: dict[str, str] = {
    "dim_order_ops__to_dim_order_copy": "casts (XNNPACK's partitioner takes no dtype "
                                        "conversion): fp32→fp16 input, fp16→fp32 output, fp32 "
                                        "scalar constants, fp32 islands in and out",
    "gelu": "exact GELU (gelu='portable'): XNNPACK's partitioner refuses fp16 GELU "
            "(GeluConfig); it runs in fp16 on the portable kernel and splits the delegate",
}

GELU_CHOICES = ("xnnpack", "portable")
XNNPACK_GELU = ("x·sigmoid(2·sqrt(2/pi)·(x + 0.044715·x³)) (the tanh form, from mul/add/sigmoid "
                "XNNPACK runs in fp16)")

# Submodules the fp16 model keeps in float32 (cast in, cast out), by type.
FP32_ISLAND_TYPES: tuple[type[nn.Module], ...] = (nn.LayerNorm,)
FP32_ISLAND_WHY = (
    "LayerNorm runs on ExecuTorch's CPU kernel (XNNPACK takes no layer norm, in fp32 either) "
    "and that kernel is wrong in fp16 for a normalized size of 256 or more (ExecuTorch 1.5.1, "
    "measured here: cosine 0.86 at 256, 0.81 at 448, exact at 255 and below; "
    "EfficientFormer-L1 fp16 logits fell to cosine 0.09); in fp32 it is what the fp32 "
    "program runs")

W8_FP32_WHY: dict[str, str] = {
    "dwconv": "XNNPACK has no dynamically quantized depthwise conv (ConvolutionConfig: only "
              "standard 2D convolutions; a conv with one input channel per group counts as "
              "depthwise)",
    "conv_not_2d": "XNNPACK quantizes 2D convolutions only, dynamically",
    "conv_transpose": "transposed conv: XNNPACK's dynamically quantized one is not verified "
                      "here, kept fp32",
    "matmul": "activation × activation matmul (no weight): XNNPACK's batch matmul is fp32 "
              "only (BMMConfig)",
    "weight_not_constant": "the weight is computed at run time: XNNPACK's quantized GEMMs "
                           "need a constant weight",
    "not_annotated": "XNNPACKQuantizer's dynamic config left it unannotated",
    "keep_fp32_conv": "asked (keep_fp32 conv)",
    "keep_fp32_linear": "asked (keep_fp32 linear)",
    "keep_fp32_shallow_conv": (
        "a shallow spatial conv (kh × kw > 1, in_channels/groups × kh × kw ≤ 144: the stem's "
        "first convs). XNNPACK quantizes a conv's input with one range per image, and these "
        "cost the most logit cosine (trained fmnist models in the ExecuTorch runtime, min over "
        "32 test images, all int8 → these fp32: EfficientFormer 0.9982 → 0.99995, FastViT "
        "0.9992 → 0.9996, LeViT 0.9991 → 0.9999)"),
}
W8_KINDS = ("conv", "linear", "shallow_conv")  # what keep_fp32 takes
SHALLOW_CONV_DEPTH = 144  # multiply-adds per output value, at most

W8A16_REFUSAL = (
    "ExecuTorch's XNNPACK backend has no int16 activations: its delegate schema has no 16-bit "
    "integer datatype (XNNDatatype: fp32, fp16, bf16, qint8, quint8, qint32, qcint8/4, qdint8, "
    "qbint4, qpint8, int32), its partitioner delegates quantize/dequantize only to int8/uint8/"
    "int32, and XNNPACKQuantizer offers only int8 static and dynamic configs")

_GEMM_KINDS = {"linear": "linear", "conv2d": "conv", "conv1d": "conv", "convolution": "conv",
               "conv_transpose1d": "conv_transpose", "conv_transpose2d": "conv_transpose",
               "matmul": "matmul", "bmm": "matmul", "mm": "matmul"}


# ---------------------------------------------------------------------------------------- fp16

class HalfPrecision(nn.Module):
    """float32 in, float32 out; the wrapped model runs in float16 between."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> Any:
        return _to_float32(self.model(x.to(torch.float16)))


class XnnpackGelu(nn.Module):
    """GELU from ops XNNPACK runs in fp16: x·σ(2√(2/π)·(x + 0.044715·x³)), the tanh form
    (0.5·(1 + tanh z) = σ(2z)). Its constants are fp16 buffers of the module, so no fp32
    scalar needs a cast on the portable kernels. Beyond |x| ≈ 40, x³ overflows to ±inf in fp16
    and σ saturates to the right limit (x, or 0)."""

    scale: torch.Tensor
    cubic: torch.Tensor

    def __init__(self, dtype: torch.dtype = torch.float16) -> None:
        super().__init__()
        self.register_buffer("scale", torch.tensor(2 * math.sqrt(2 / math.pi), dtype=dtype))
        self.register_buffer("cubic", torch.tensor(0.044715, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.scale * (x + self.cubic * (x * x * x)))


class Float32Island(nn.Module):
    """A submodule of the fp16 model kept in float32: fp16 in, fp16 out, fp32 inside."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.module(x.to(torch.float32))
        return out.to(torch.float16)


def _to_float32(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return out.to(torch.float32) if out.is_floating_point() else out
    if isinstance(out, (tuple, list)):
        return type(out)(_to_float32(o) for o in out)
    return out


def prepare_fp16(model: nn.Module, example: torch.Tensor | None = None, *,
                 gelu: str = "xnnpack") -> tuple[nn.Module, dict[str, Any]]:
    """(HalfPrecision(copy of `model` in float16), details).

    gelu="xnnpack" (default) swaps GELU modules for XnnpackGelu, which XNNPACK runs in fp16
    (its error against the exact erf GELU, ≤ 4.7e-4, is under a quarter of fp16's spacing where
    it peaks); "portable" keeps the exact GELU, which XNNPACK refuses in fp16: it runs on
    ExecuTorch's portable kernel and splits the delegate around every GELU (EfficientFormer-L1:
    22 partitions instead of 7, 101 vs 67 ms here). A GELU called as a function in a forward
    (not a module) stays portable either way.

    With `example`, the eager fp16 forward runs first: a value beyond fp16's range (65504) is
    refused naming the first module whose output overflowed, and the eager cosine is recorded.
    The run also fills timm's attention-bias caches (LeViT, EfficientFormer) in fp16, so the
    export reads them as constants; without it the export traces the gathers, which stay on
    portable `index.Tensor` kernels."""
    if gelu not in GELU_CHOICES:
        raise ValueError(f"gelu must be one of {GELU_CHOICES}, not {gelu!r}")
    half = copy.deepcopy(model).eval().half()
    islands = _fp32_islands(half, model)
    gelus = _swap_gelus(half) if gelu == "xnnpack" else []
    wrapped = HalfPrecision(half).eval()
    float_tensors = [t for t in (*half.parameters(), *half.buffers())
                     if t.dtype == torch.float16]
    details: dict[str, Any] = {
        "scheme": FP16_SCHEME, "io_dtype": "float32", "compute_dtype": "float16",
        "fp16_tensors": len(float_tensors),
        "fp16_elements": int(sum(t.numel() for t in float_tensors)),
        "portable_kernels": {k: v for k, v in FP16_PORTABLE.items()
                             if k != "gelu" or gelu == "portable"},
        "gelu": ({"modules": len(gelus), "as": XNNPACK_GELU} if gelus
                 else "exact, on the portable kernel" if gelu == "portable"
                 else "no GELU module"),
        "fp32_islands": {"modules": islands, "why": FP32_ISLAND_WHY} if islands else {},
        "x86_64": "without AVX512-FP16, XNNPACK stores fp16 and computes in fp32 (f16_f32acc "
                  "GEMMs, F16C conversions): the host shows fp16 storage rounding, an ARMv8.2 "
                  "core with FP16 arithmetic also accumulates in fp16",
    }
    if example is not None:
        details["eager_cosine"] = _check_fp16_range(model, half, wrapped, example)
    return wrapped, details


def _gelu_types() -> tuple[type[nn.Module], ...]:
    types: list[type[nn.Module]] = [nn.GELU]
    try:  # timm's own GELU modules call F.gelu
        from timm.layers.activations import GELU, GELUTanh
        types += [GELU, GELUTanh]
    except ImportError:
        pass
    return tuple(types)


def _swap_gelus(half: nn.Module) -> list[str]:
    """Replace every GELU module of `half` (in place) by an XnnpackGelu."""
    types = _gelu_types()
    names = [n for n, m in half.named_modules() if n and type(m) in types]
    for name in names:
        parent_name, _, attr = name.rpartition(".")
        parent = half.get_submodule(parent_name) if parent_name else half
        setattr(parent, attr, XnnpackGelu())
    return names


def _fp32_islands(half: nn.Module, original: nn.Module) -> list[str]:
    """Replace every FP32_ISLAND_TYPES submodule of `half` (in place) by a Float32Island of a
    copy of the original fp32 one."""
    names = [n for n, m in half.named_modules() if n and isinstance(m, FP32_ISLAND_TYPES)]
    for name in names:
        parent_name, _, attr = name.rpartition(".")
        parent = half.get_submodule(parent_name) if parent_name else half
        setattr(parent, attr, Float32Island(copy.deepcopy(original.get_submodule(name))))
    return names


def _check_fp16_range(model: nn.Module, half: nn.Module, wrapped: nn.Module,
                      example: torch.Tensor) -> float:
    overflowed: list[str] = []

    def hook(name: str) -> Any:
        def check(_module: nn.Module, _inputs: Any, output: Any) -> None:
            if not overflowed and isinstance(output, torch.Tensor) \
                    and output.is_floating_point() and not bool(torch.isfinite(output).all()):
                overflowed.append(name)
        return check

    handles = [m.register_forward_hook(hook(n or type(half).__name__))
               for n, m in half.named_modules()]
    try:
        with torch.no_grad():
            reference = _first(model(example)).numpy()
            out = _first(wrapped(example)).numpy()
    finally:
        for h in handles:
            h.remove()
    if not np.isfinite(out).all() and np.isfinite(reference).all():
        where = f" (first in {overflowed[0]})" if overflowed else ""
        raise ExportError(f"the model overflows float16{where}: a value beyond ±65504 becomes "
                          "inf in fp16", hint="export with --quant fp32 or w8")
    return min_cosine(out, reference)


# ------------------------------------------------------------------------------------------ w8

def prepare_w8(model: nn.Module, example: torch.Tensor, *,
               keep_fp32: tuple[str, ...] = ("shallow_conv",)
               ) -> tuple[nn.Module, dict[str, Any]]:
    """PT2E with XNNPACKQuantizer's dynamic per-channel config: (converted module, details).

    No calibration: a dynamic activation gets its range at run time (the one forward over
    `example` only runs the placeholder observers). Conv → ReLU, which the quantizer's dynamic
    patterns skip (its conv_relu pattern is static-only), is annotated here as the conv alone.
    `keep_fp32` kinds stay fp32: "shallow_conv" (default; W8_FP32_WHY says why), "conv" (every
    conv: XNNPACK quantizes a conv's input with one range per image, coarser than a linear's
    per row), "linear". `keep_fp32=()` quantizes everything XNNPACK can.
    """
    bad = sorted(set(keep_fp32) - set(W8_KINDS))
    if bad:
        raise ValueError(f"keep_fp32 takes {W8_KINDS}, not {bad}")
    from executorch.backends.transforms.duplicate_dynamic_quant_chain import (
        DuplicateDynamicQuantChainPass,
    )
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = _w8_quantizer(tuple(keep_fp32))
    with torch.no_grad():
        graph = torch.export.export(copy.deepcopy(model).eval(), (example,),
                                    strict=False).module()
        folded = _fold_constant_gathers(graph)
        prepared = prepare_pt2e(graph, quantizer)  # type: ignore[arg-type]
        sites = _w8_sites(prepared, keep_fp32)
        prepared(example)
        converted = convert_pt2e(prepared, fold_quantize=True)
        DuplicateDynamicQuantChainPass()(converted)
        converted = move_exported_model_to_eval(converted)
        reference = _first(model(example)).numpy()
        simulated = _first(converted(example)).numpy()
    int8 = Counter(kind for kind, why, _ in sites if why is None)
    kept: dict[str, dict[str, Any]] = {}
    for kind, why, _ in sites:
        if why is not None:
            row = kept.setdefault(why, {"count": 0, "why": W8_FP32_WHY[why], "ops": Counter()})
            row["count"] += 1
            row["ops"][kind] += 1
    if not int8:
        raise ExportError("--quant w8 found no linear or 2D conv XNNPACK can quantize "
                          "dynamically in this model", hint="export with --quant fp16 or fp32")
    details: dict[str, Any] = {
        "scheme": W8_SCHEME,
        "quantizer": "PT2E XNNPACKQuantizer get_symmetric_quantization_config("
                     "is_per_channel=True, is_dynamic=True)",
        "calibration": "none (activation ranges are computed per inference)",
        "keep_fp32": list(keep_fp32),
        "int8_weights": dict(int8.most_common()),
        "int8_weight_elements": sum(n for _, why, n in sites if why is None),
        "fp32_weight_elements": sum(n for _, why, n in sites if why is not None),
        "kept_fp32": {k: {**v, "ops": dict(v["ops"])} for k, v in kept.items()},
        **({"constant_gathers_folded": folded} if folded else {}),
        "simulated_cosine": min_cosine(simulated, reference),
        "simulated_note": "PT2E simulates per-tensor activation ranges; XNNPACK quantizes per "
                          "row (linear) / per image (conv), so the runtime is at least as close",
    }
    return converted, details


def _fold_constant_gathers(graph: torch.fx.GraphModule) -> int:
    """Fold `index` ops of constants (LeViT's / EfficientFormer's attention-bias gathers) into
    constants. The fp32 lowering gets them folded; from the PT2E graph they reached the .pte
    as portable `index.Tensor` kernels, one per attention block. Returns how many."""
    from torchao.quantization.pt2e.constant_fold import constant_fold

    def gathers() -> int:
        return sum(n.target == torch.ops.aten.index.Tensor for n in graph.graph.nodes)

    before = gathers()
    if before:
        with torch.no_grad():  # constants, not outputs of the parameters' autograd graph
            constant_fold(graph, lambda n: n.target == torch.ops.aten.index.Tensor)
    return before - gathers()


def _w8_quantizer(keep_fp32: tuple[str, ...] = ()) -> Any:
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    config = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True)

    class W8Quantizer(XNNPACKQuantizer):
        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            model = super().annotate(model)
            _annotate_skipped_convs(model, config)
            _drop_unsupported(model, keep_fp32)
            return model

    return W8Quantizer().set_global(config)


def _annotate_skipped_convs(gm: torch.fx.GraphModule, config: Any) -> int:
    """Annotate the convs XNNPACK can run dynamically that XNNPACKQuantizer left out: a conv
    whose only user is a ReLU (its dynamic conv pattern skips those for conv_relu, a static-only
    pattern). The ReLU stays fp32 after the conv, in the same delegate."""
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation
    from torchao.quantization.pt2e.quantizer.quantizer import Q_ANNOTATION_KEY

    done = 0
    for node in gm.graph.nodes:
        if _kind(node) != "conv" or _annotated(node) or _w8_refusal(node) is not None:
            continue
        act, weight = node.args[0], node.args[1]
        node.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(
            input_qspec_map={act: config.input_activation, weight: config.weight},
            _annotated=True)
        weight.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(_annotated=True)
        done += 1
    return done


def _drop_unsupported(gm: torch.fx.GraphModule, keep_fp32: tuple[str, ...] = ()) -> None:
    """Unannotate GEMMs XNNPACK cannot take dynamically quantized (`_w8_refusal`: their
    quantize/dequantize would be left to portable kernels the runtime does not have) and
    those of the `keep_fp32` kinds."""
    from torchao.quantization.pt2e.quantizer.quantizer import Q_ANNOTATION_KEY

    for node in gm.graph.nodes:
        if _kind(node) is not None and _annotated(node) \
                and (_w8_refusal(node) is not None or _kept(node, keep_fp32) is not None):
            del node.meta[Q_ANNOTATION_KEY]


def _kept(node: Any, keep_fp32: tuple[str, ...]) -> str | None:
    """The keep_fp32 entry that keeps this GEMM node fp32, if any."""
    kind = _kind(node)
    if kind in keep_fp32:
        return kind
    if kind == "conv" and "shallow_conv" in keep_fp32:
        val = getattr(node.args[1], "meta", {}).get("val")
        if val is not None and math.prod(val.shape[2:]) > 1 \
                and math.prod(val.shape[1:]) <= SHALLOW_CONV_DEPTH:
            return "shallow_conv"
    return None


def _annotated(node: Any) -> bool:
    from torchao.quantization.pt2e.quantizer.quantizer import Q_ANNOTATION_KEY

    ann = node.meta.get(Q_ANNOTATION_KEY)
    return bool(ann is not None and ann._annotated)


def _kind(node: Any) -> str | None:
    if node.op != "call_function" or not hasattr(node.target, "_schema"):
        return None
    return _GEMM_KINDS.get(node.target._schema.name.removeprefix("aten::"))


def _w8_refusal(node: Any) -> str | None:
    """Why XNNPACK cannot run this GEMM node with int8 weights dynamically (None: it can)."""
    kind = _kind(node)
    if kind in ("matmul", "conv_transpose"):
        return kind
    weight = node.args[1]
    if getattr(weight, "op", None) != "get_attr":
        return "weight_not_constant"
    if kind == "conv":
        if node.target == torch.ops.aten.convolution.default and node.args[6]:
            return "conv_transpose"
        shape = tuple(weight.meta["val"].shape)
        if len(shape) != 4:
            return "conv_not_2d"
        if shape[1] == 1:  # XNNPACK's is_depthwise_conv: one input channel per group
            return "dwconv"
    return None


def _w8_sites(prepared: torch.fx.GraphModule, keep_fp32: tuple[str, ...] = ()
              ) -> list[tuple[str, str | None, int]]:
    """(kind, why fp32 or None for int8, weight elements) for every GEMM of the prepared graph
    (int8: its weight passes an observer)."""
    from edgekit.support import op_name

    def observed(n: Any) -> bool:
        return n.op == "call_module" and "activation_post_process" in str(n.target)

    sites = []
    for node in prepared.graph.nodes:
        kind = _kind(node)
        if kind is None:
            continue
        weight = node.args[1]
        int8 = kind in ("linear", "conv") and isinstance(weight, torch.fx.Node) \
            and observed(weight)
        kept = None if int8 else _kept(node, keep_fp32)
        why = None if int8 else (_w8_refusal(node) or (
            f"keep_fp32_{kept}" if kept else "not_annotated"))
        name = op_name(node.target)
        if kind == "conv" and why == "dwconv":
            name = "dwconv"
        if int8:
            weight = weight.args[0]
        val = weight.meta.get("val") if isinstance(weight, torch.fx.Node) else None
        elements = int(val.numel()) if kind != "matmul" and val is not None else 0
        sites.append((name, why, elements))
    return sites


# -------------------------------------------------------------------------------------- shared

def _first(out: Any) -> Any:
    return out[0] if isinstance(out, (tuple, list)) else out


def min_cosine(output: np.ndarray, reference: np.ndarray) -> float:
    """Smallest per-sample cosine of two batched outputs (float64)."""
    a = np.asarray(output, dtype=np.float64).reshape(len(output), -1)
    b = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-30)
    return float(cos.min())
