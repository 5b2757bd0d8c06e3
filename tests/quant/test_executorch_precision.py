"""ExecuTorch fp16 / w8 (quant/executorch_precision.py): lowered to XNNPACK and run in
ExecuTorch's runtime; w8a16's refusal pinned to the installed backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from edgekit.exporters.executorch import ExecuTorchExporter
from edgekit.runtimes.executorch import ExecuTorchSession
from torch import nn

from edgekit.exporter import ExportOptions
from edgekit.quant.executorch_precision import (
    W8A16_REFUSAL,
    Float32Island,
    HalfPrecision,
    XnnpackGelu,
    min_cosine,
    prepare_fp16,
    prepare_w8,
)
from tests.tiny_models import tiny_convnet, tiny_hybrid

QUANT_OPS = ("quantize", "dequantize", "choose_qparams")


def _inputs(n: int = 4, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(
        (n, 3, size, size), dtype=np.float32))


def _export(module: nn.Module, example: torch.Tensor, out: Path) -> tuple[Path, dict[str, Any]]:
    out.mkdir(parents=True, exist_ok=True)
    result = ExecuTorchExporter().export(module, example, ExportOptions(), out)
    assert result.inputs[0].dtype == "float32" and result.outputs[0].dtype == "float32"
    return out / result.file, result.details["delegation"]


def _run(pte: Path, x: torch.Tensor) -> np.ndarray:
    session = ExecuTorchSession(pte, None)
    (name, (_, dtype)), = session.inputs.items()
    assert dtype == "float32"
    outs = [session.run({name: x[i:i + 1].numpy()})["output_0"] for i in range(len(x))]
    assert all(o.dtype == np.float32 for o in outs)
    return np.concatenate(outs)


def _delegated_dtypes(module: nn.Module, example: torch.Tensor) -> set[torch.dtype]:
    """dtypes of the tensors computed inside the XNNPACK partitions of the lowered program."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    with torch.no_grad():
        exported = torch.export.export(module, (example,), strict=False)
        edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
    gm = edge.exported_program().graph_module
    dtypes = set()
    for name, lowered in gm.named_children():
        if not name.startswith("lowered_module"):
            continue
        for node in lowered.original_module.graph.nodes:
            val = node.meta.get("val")
            if node.op == "call_function" and isinstance(val, torch.Tensor):
                dtypes.add(val.dtype)
    return dtypes


class NormGelu(nn.Module):
    """Token MLP with a LayerNorm over 256 channels and a GELU (EfficientFormer's last stage)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 256, 8, 8)
        self.norm = nn.LayerNorm(256)
        self.fc1, self.act, self.fc2 = nn.Linear(256, 512), nn.GELU(), nn.Linear(512, 256)
        self.head = nn.Linear(256, 10)
        with torch.no_grad():
            self.norm.weight.normal_(1.0, 0.5)
            self.norm.bias.normal_(0.0, 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.stem(x).flatten(2).transpose(1, 2)
        t = self.norm(t)
        t = t + self.fc2(self.act(self.fc1(t)))
        return self.head(t.mean(1))


def test_fp16_program_takes_and_returns_fp32_and_computes_fp16_in_xnnpack(tmp_path):
    model = tiny_hybrid().eval()
    x = _inputs()
    wrapped, details = prepare_fp16(model, x[:1])
    assert isinstance(wrapped, HalfPrecision)
    assert next(wrapped.parameters()).dtype == torch.float16
    assert next(model.parameters()).dtype == torch.float32  # the caller's model is untouched
    assert details["io_dtype"] == "float32" and details["fp16_tensors"] > 0
    assert details["eager_cosine"] > 0.9999
    pte, delegation = _export(wrapped, x[:1], tmp_path / "fp16")
    _, fp32 = _export(model, x[:1], tmp_path / "fp32")
    # XNNPACK takes every op fp32 gives it; the casts stay out (XNNPACK delegates no dtype
    # conversion): the input's, the output's and the attention scale constant's
    assert (delegation["delegated"], delegation["partitions"]) == \
        (fp32["delegated"], fp32["partitions"])
    extra = dict(delegation["not_delegated"])
    assert extra.pop("dim_order_ops__to_dim_order_copy") == 3
    assert extra == fp32["not_delegated"]
    with torch.no_grad():
        reference = model(x).numpy()
    out = _run(pte, x)
    assert min_cosine(out, reference) >= 0.999
    assert not np.array_equal(out, reference)  # really computed in fp16


def test_fp16_partitions_compute_in_fp16():
    model = tiny_hybrid().eval()
    wrapped, _ = prepare_fp16(model)
    assert _delegated_dtypes(wrapped, _inputs(n=1)) == {torch.float16}
    assert _delegated_dtypes(model, _inputs(n=1)) == {torch.float32}


def _norm_gelu_case() -> tuple[NormGelu, torch.Tensor, np.ndarray]:
    """The LayerNorm + GELU model, two inputs and its fp32 outputs."""
    torch.manual_seed(0)
    model = NormGelu().eval()
    x = _inputs(n=2)
    with torch.no_grad():
        reference = model(x).numpy()
    return model, x, reference


def test_fp16_keeps_layernorm_fp32_because_executorch_fp16_layernorm_is_wrong(tmp_path):
    model, x, reference = _norm_gelu_case()
    wrapped, details = prepare_fp16(model)
    assert details["fp32_islands"]["modules"] == ["norm"]
    assert isinstance(wrapped.model.norm, Float32Island)
    assert wrapped.model.norm.module.weight.dtype == torch.float32
    assert wrapped.model.fc1.weight.dtype == torch.float16
    pte, delegation = _export(wrapped, x[:1], tmp_path / "island")
    # XNNPACK takes no layer norm (in fp32 either): it runs on the portable kernel, in fp32
    assert delegation["not_delegated"].get("native_layer_norm") == 1
    assert min_cosine(_run(pte, x), reference) >= 0.999
    # the reason for the island: the same LayerNorm in fp16 on ExecuTorch's kernel is wrong
    plain = HalfPrecision(NormGelu().eval()).eval()
    plain.model.load_state_dict(model.state_dict())
    plain.model.half()
    pte16, _ = _export(plain, x[:1], tmp_path / "plain")
    assert min_cosine(_run(pte16, x), reference) < 0.99, \
        "ExecuTorch's fp16 layer_norm is right now: FP32_ISLAND_TYPES may drop LayerNorm"


def test_fp16_gelu_runs_in_xnnpack_or_exact_on_the_portable_kernel(tmp_path):
    model, x, reference = _norm_gelu_case()
    fast, details = prepare_fp16(model)
    assert isinstance(fast.model.act, XnnpackGelu) and details["gelu"]["modules"] == 1
    exact, details = prepare_fp16(model, gelu="portable")
    assert isinstance(exact.model.act, nn.GELU) and "gelu" in details["portable_kernels"]
    partitions = {}
    for name, module in (("xnnpack", fast), ("portable", exact)):
        pte, delegation = _export(module, x[:1], tmp_path / name)
        assert min_cosine(_run(pte, x), reference) >= 0.999, name
        assert delegation["not_delegated"].get("gelu") == (1 if name == "portable" else None)
        partitions[name] = delegation["partitions"]
    # XNNPACK refuses an fp16 GELU: on the portable kernel it splits its partition in two
    assert partitions["portable"] == partitions["xnnpack"] + 1
    with pytest.raises(ValueError, match="gelu must be one of"):
        prepare_fp16(model, gelu="erf")


def test_xnnpack_gelu_is_within_fp16_rounding_of_the_exact_gelu():
    x = torch.linspace(-60, 60, 240001)
    exact = nn.functional.gelu(x.double())
    tanh_form = XnnpackGelu(torch.float64)(x.double())
    assert float((tanh_form - exact).abs().max()) < 5e-4
    # in fp16 (x³ overflows to ±inf beyond |x| ≈ 40): within 5e-4 plus one fp16 spacing of the
    # exact GELU of the fp16 input
    x16 = x.half()
    half = XnnpackGelu()(x16).double()
    assert torch.isfinite(half).all()
    exact16 = nn.functional.gelu(x16.double())
    rounded = exact16.half().abs()
    spacing = (torch.nextafter(rounded, torch.tensor(float("inf"), dtype=torch.half))
               - rounded).double()
    assert float((((half - exact16).abs() - 5e-4) / spacing).max()) <= 1.0


def test_w8_int8_weights_dynamic_activations_on_xnnpack(tmp_path):
    model = tiny_hybrid().eval()
    x = _inputs()
    quantized, details = prepare_w8(model, x[:1])
    # pointwise conv, qkv, proj, head: int8; the 7×7 depthwise conv and the two attention
    # matmuls (activation × activation) stay fp32, each with XNNPACK's reason, and the 3×3 stem
    # conv on the image (27 multiply-adds per output) by default
    assert details["int8_weights"] == {"linear": 3, "conv2d": 1}
    kept = details["kept_fp32"]
    assert kept["dwconv"]["count"] == 1 and "depthwise" in kept["dwconv"]["why"]
    assert kept["matmul"]["count"] == 2
    assert kept["keep_fp32_shallow_conv"]["count"] == 1
    assert details["int8_weight_elements"] > 10 * details["fp32_weight_elements"]
    assert details["simulated_cosine"] >= 0.999
    pte, delegation = _export(quantized, x[:1], tmp_path / "w8")
    # every quantize/dequantize/choose_qparams is inside the delegate (the runtime has no
    # portable kernels for them)
    assert not [op for op in delegation["not_delegated"] if any(q in op for q in QUANT_OPS)]
    # and the quantized GEMMs split no partition: what fp32 leaves out, w8 leaves out
    fp32_pte, fp32 = _export(model, x[:1], tmp_path / "fp32")
    assert delegation["partitions"] == fp32["partitions"]
    assert delegation["not_delegated"] == fp32["not_delegated"]
    with torch.no_grad():
        reference = model(x).numpy()
    assert min_cosine(_run(pte, x), reference) >= 0.999
    assert pte.stat().st_size < 0.5 * fp32_pte.stat().st_size  # int8 weight storage


def test_w8_quantizes_conv_before_relu_and_grouped_conv(tmp_path):
    # XNNPACKQuantizer's dynamic patterns skip conv → ReLU (its conv_relu pattern is static);
    # prepare_w8 annotates the conv alone. tiny_convnet: conv-BN-ReLU stem, a groups=4 conv.
    model = tiny_convnet().eval()
    x = _inputs()
    quantized, details = prepare_w8(model, x[:1], keep_fp32=())
    assert details["int8_weights"] == {"linear": 2, "conv2d": 2}
    assert details["kept_fp32"] == {}
    pte, delegation = _export(quantized, x[:1], tmp_path)
    assert not [op for op in delegation["not_delegated"] if any(q in op for q in QUANT_OPS)]
    with torch.no_grad():
        reference = model(x).numpy()
    assert min_cosine(_run(pte, x), reference) >= 0.999


def test_w8_keep_fp32_kinds():
    model = tiny_hybrid().eval()
    x = _inputs(n=1)
    _, details = prepare_w8(model, x, keep_fp32=("conv",))
    assert details["int8_weights"] == {"linear": 3}
    assert details["kept_fp32"]["keep_fp32_conv"]["count"] == 2
    _, details = prepare_w8(model, x, keep_fp32=("linear",))
    assert details["int8_weights"] == {"conv2d": 2}
    with pytest.raises(ValueError, match="keep_fp32 takes"):
        prepare_w8(model, x, keep_fp32=("dwconv",))


@pytest.mark.slow  # ~40 s per mode: ExecuTorch's lowering of timm's LeViT
@pytest.mark.parametrize("mode", ["fp16", "w8"])
def test_fmnist_levit_in_the_executorch_runtime(tmp_path, mode):
    from edgekit.models.source import load_source

    from edgekit.data import golden_inputs

    src = load_source("fmnist_levit")
    x = torch.from_numpy(golden_inputs(src.data_config, 8, seed=0))
    with torch.no_grad():
        reference = src.model(x).numpy()
    if mode == "fp16":
        module, _ = prepare_fp16(src.model)
    else:
        module, details = prepare_w8(src.model, x[:1])
        assert details["int8_weights"]["linear"] > 0 and "dwconv" not in details["kept_fp32"]
    pte, _ = _export(module, x[:1], tmp_path)
    out = _run(pte, x)
    assert min_cosine(out, reference) >= 0.999
    assert (out.argmax(1) == reference.argmax(1)).all()


def test_w8a16_refusal_matches_the_installed_xnnpack_backend():
    from executorch.backends.xnnpack.serialization.xnnpack_graph_schema import XNNDatatype

    names = [d.name for d in XNNDatatype]
    assert "xnn_datatype_qint8" in names and "xnn_datatype_qdint8" in names
    assert not [n for n in names if "16" in n and n not in ("xnn_datatype_fp16",
                                                             "xnn_datatype_bf16")]
    assert "int16" in W8A16_REFUSAL and "XNNDatatype" in W8A16_REFUSAL


@pytest.mark.parametrize("kind", ["list", "tuple"])
def test_half_precision_returns_fp32_for_every_output(kind):
    class Two(nn.Module):
        def forward(self, x: torch.Tensor) -> Any:
            out = (x * 2, x.argmax(1))
            return list(out) if kind == "list" else out

    a, idx = HalfPrecision(Two())(torch.ones(1, 3))
    assert a.dtype == torch.float32 and idx.dtype == torch.int64
