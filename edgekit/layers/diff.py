"""`edgekit diff`: where the accuracy goes, layer by layer.

The artifact runs its inputs with every intermediate tensor kept (ONNX Runtime: the tensors as
extra graph outputs, for a QDQ graph the DequantizeLinear outputs the next layer reads, so the
int8 kernels still run; LiteRT: preserve-all-tensors, XNNPACK still computing each op), and so
does the reference: the timm fp32 model rebuilt from the manifest with the same deploy passes,
read with forward hooks, or a second artifact. A module's tensor in a graph is the last tensor
made inside its scope (layers.json) that leaves it; tensors are matched by module path, NHWC
transposed to NCHW where that is the shape. Per layer, in graph order: cosine (mean over inputs
and the worst), SQNR, max-abs; `first_below` is the first layer under the threshold (default:
the artifact's mode's validation cosine).

JSON contract: {"layers": [{"module", "cosine", "sqnr_db", "max_abs", ...}], "first_below", ...}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.artifact import Artifact
from edgekit.errors import ArtifactError, UsageError
from edgekit.layers.modules import LayerMap
from edgekit.registry import Registry

IN_DISTRIBUTION = ("photo", "test-image")


@dataclass(frozen=True)
class Intermediates:
    """One format's capture: `capture(artifact, layers, x_nchw)` -> ({module path: array, batch
    first}, [module paths in graph order])."""

    capture: Callable[[Artifact, LayerMap, np.ndarray],
                      tuple[dict[str, np.ndarray], list[str]]]


INTERMEDIATES: Registry[Intermediates] = Registry("intermediate capture")


def _scoped(module: str | None, scope: str) -> bool:
    if module is None:
        return False
    return scope == "" or module == scope or module.startswith(scope + ".")


def _ancestors(path: str) -> list[str]:
    """'a.b.c' -> ['a.b.c', 'a.b', 'a', ''] ('' is the model itself)."""
    parts = path.split(".") if path else []
    return [".".join(parts[:i]) for i in range(len(parts), -1, -1)]


def module_outputs(ops: list[tuple[str | None, list[str], list[str]]],
                   graph_outputs: set[str]) -> tuple[dict[str, str], list[str]]:
    """ops = [(module, inputs, outputs)] in graph order -> ({module: the tensor that carries
    its output}, modules in graph order): the last tensor made inside the module (or a
    submodule) that an op outside it reads, or that is a graph output."""
    readers: dict[str, list[str | None]] = {}
    for module, inputs, _ in ops:
        for t in inputs:
            readers.setdefault(t, []).append(module)
    chosen: dict[str, str] = {}
    made_at: dict[str, int] = {}
    for i, (module, _, outputs) in enumerate(ops):
        if module is None:
            continue
        for scope in _ancestors(module):
            for t in outputs:
                leaves = t in graph_outputs or any(not _scoped(r, scope)
                                                   for r in readers.get(t, []))
                if leaves:
                    chosen[scope], made_at[scope] = t, i
    # graph order = where each module's output is made; nested modules that share an output
    # tensor, innermost first
    order = sorted(chosen, key=lambda m: (made_at[m], -len(_ancestors(m))))
    return chosen, order


# ------------------------------------------------------------------------------------- ONNX

def _onnx_capture(art: Artifact, layers: LayerMap, x: np.ndarray
                  ) -> tuple[dict[str, np.ndarray], list[str]]:
    import onnx
    import onnxruntime as ort

    from edgekit.layers.onnx_graph import node_keys

    model = onnx.load(str(art.model_path))
    graph = model.graph
    keys = node_keys(model)
    elem = {vi.name: vi.type.tensor_type.elem_type
            for vi in [*graph.value_info, *graph.input, *graph.output]}
    consumers: dict[str, list[Any]] = {}
    for n in graph.node:
        for t in n.input:
            consumers.setdefault(t, []).append(n)
    # A QDQ graph: a float tensor that is quantized is read back through its DQ; that DQ
    # output is what the next layer sees (and exposing it keeps the int8 kernels fused).
    def seen_as(t: str) -> str:
        for q in consumers.get(t, []):
            if q.op_type == "QuantizeLinear":
                for dq in consumers.get(q.output[0], []):
                    if dq.op_type == "DequantizeLinear":
                        return str(dq.output[0])
        return t

    ops = [(layers.ops.get(k), list(n.input), [seen_as(t) for t in n.output
                                              if n.op_type not in ("QuantizeLinear",
                                                                   "DequantizeLinear")])
           for k, n in zip(keys, graph.node, strict=True)]
    outs = {o.name for o in graph.output}
    chosen, order = module_outputs(ops, outs)
    float_ok = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, 0}
    chosen = {m: t for m, t in chosen.items() if elem.get(t, 0) in float_ok}
    wanted = sorted(set(chosen.values()) - outs)
    probes = _outputs_in_order(model, outs, wanted)
    del graph.output[:]  # the model's outputs first, then the probes
    graph.output.extend(probes)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    batch = max(1, int(art.manifest.inputs[0].shape[0]))
    got: dict[str, list[np.ndarray]] = {n: [] for n in names}
    feed_name = sess.get_inputs()[0].name
    for chunk in _chunks(x, batch):
        for n, v in zip(names, sess.run(None, {feed_name: chunk[0]}), strict=True):
            got[n].append(np.asarray(v)[: chunk[1]])
    arrays = {n: np.concatenate(v).astype(np.float32) for n, v in got.items()}
    return {m: arrays[t] for m, t in chosen.items() if t in arrays}, \
        [m for m in order if m in chosen]


def _outputs_in_order(model: Any, outs: set[str], wanted: list[str]) -> list[Any]:
    import onnx

    original = {o.name: o for o in model.graph.output} if model.graph.output else {}
    keep = [original[o] for o in sorted(outs) if o in original]
    return [*keep, *(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None)
                     for t in wanted)]


def _chunks(x: np.ndarray, batch: int) -> list[tuple[np.ndarray, int]]:
    out = []
    for start in range(0, len(x), batch):
        chunk = np.ascontiguousarray(x[start:start + batch], dtype=np.float32)
        n = len(chunk)
        if n < batch:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - n, 0)])
        out.append((chunk, n))
    return out


INTERMEDIATES.register("onnx", Intermediates(_onnx_capture))


# ----------------------------------------------------------------------------------- TFLite

def _tflite_capture(art: Artifact, layers: LayerMap, x: np.ndarray
                    ) -> tuple[dict[str, np.ndarray], list[str]]:
    import warnings

    from ai_edge_litert.interpreter import Interpreter

    with warnings.catch_warnings():  # "preserve_all_tensors is for debugging": it is, here
        warnings.simplefilter("ignore", UserWarning)
        interp = Interpreter(model_path=str(art.model_path), num_threads=1,
                             experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    ops = [o for o in interp._get_ops_details() if o["op_name"] != "DELEGATE"]  # noqa: SLF001
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    out_ids = {int(d["index"]) for d in interp.get_output_details()}
    chosen_ids, order = module_outputs(
        [(layers.ops.get(str(o["index"])), [str(i) for i in o["inputs"]],
          [str(i) for i in o["outputs"]]) for o in ops], {str(i) for i in out_ids})
    inp = interp.get_input_details()[0]
    nhwc = art.manifest.inputs[0].layout == "NHWC"
    got: dict[str, list[np.ndarray]] = {m: [] for m in chosen_ids}
    for img in x:
        feed = img[None].transpose(0, 2, 3, 1) if nhwc else img[None]
        scale, zero = inp["quantization"]
        if scale:
            info = np.iinfo(inp["dtype"])
            feed = np.clip(np.round(feed / scale) + zero, info.min, info.max)
        interp.set_tensor(inp["index"], np.ascontiguousarray(feed).astype(inp["dtype"]))
        interp.invoke()
        for m, t in chosen_ids.items():
            detail = tensors[int(t)]
            v = interp.get_tensor(int(t))
            s, z = detail["quantization"]
            got[m].append((v.astype(np.float32) - z) * s if s else v.astype(np.float32))
    return {m: np.concatenate(v) for m, v in got.items()}, order


INTERMEDIATES.register("tflite", Intermediates(_tflite_capture))


# ------------------------------------------------------------------------------ torch (fp32)

def rebuild_source(art: Artifact) -> Any:
    """The artifact's source model, rebuilt from its manifest, with the same deploy passes."""
    import torch

    from edgekit.models.source import load_source
    from edgekit.transforms.base import DEFAULT_PASSES, NO_REPARAM_PASSES, DeployPipeline

    m = art.manifest
    w = m.weights
    spec = str(m.exporter.get("spec") or m.model)
    kind = w.get("kind")
    if kind == "live-random":
        source = load_source(spec, seed=int(w.get("seed", 0)))
    elif kind == "pretrained":
        source = load_source(spec, pretrained=True)
    elif kind == "trained-fmnist":
        source = load_source(spec)
    elif kind == "file" and w.get("path") and Path(w["path"]).is_file():
        source = load_source(spec, weights=Path(w["path"]))
    else:
        raise UsageError(f"cannot rebuild the source of {art.path.name} (weights: {kind}"
                         + (f", {w.get('path')} is gone" if w.get("path") else "") + ")",
                         hint="diff against another artifact instead: --against ART2")
    model = source.model.eval()
    golden_in, golden_out = art.load_golden()
    x = next(iter(golden_in.values()))
    x = x.transpose(0, 3, 1, 2) if m.inputs[0].layout == "NHWC" else x
    check = torch.from_numpy(np.ascontiguousarray(x[:2], dtype=np.float32))
    passes = DEFAULT_PASSES if m.exporter.get("reparam", True) else NO_REPARAM_PASSES
    DeployPipeline(passes).run(model, torch.cat([check[:1], check[-1:]]))
    with torch.no_grad():
        y = model(check)
    y = (y[0] if isinstance(y, (tuple, list)) else y).numpy()
    ref = next(iter(golden_out.values()))[:2]
    if _cosine(y, ref)[0] < 0.9999:
        raise ArtifactError("the rebuilt source model does not reproduce the artifact's "
                            "golden reference (another timm/edgekit version, or other "
                            "weights)", path=art.path,
                            hint="diff against another artifact (--against ART2), or "
                                 "re-export with this edgekit")
    return model


def torch_intermediates(model: Any, x: np.ndarray) -> dict[str, np.ndarray]:
    import torch

    got: dict[str, np.ndarray] = {}
    hooks = []

    def keep(name: str) -> Callable[..., None]:
        def hook(_m: Any, _i: Any, out: Any) -> None:
            t = out[0] if isinstance(out, (tuple, list)) and out else out
            if isinstance(t, torch.Tensor) and t.is_floating_point():
                got[name] = t.detach().float().numpy().copy()
        return hook

    for name, mod in model.named_modules():
        hooks.append(mod.register_forward_hook(keep(name)))
    try:
        with torch.no_grad():
            model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    finally:
        for h in hooks:
            h.remove()
    return got


# ---------------------------------------------------------------------------------- compare

def _layouts(a: np.ndarray, ref: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """`a` in `ref`'s shape, every way that fits: as is, NHWC -> NCHW (a TFLite activation),
    (B, H, W, C) -> (B, N, C) tokens, or reshaped in element order."""
    if a.size != ref.size:
        return []
    out = [("as is", a)] if a.shape == ref.shape else []
    if a.ndim == 4 and a.transpose(0, 3, 1, 2).shape == ref.shape:
        out.append(("NHWC->NCHW", a.transpose(0, 3, 1, 2)))
    if a.ndim == 4 and ref.ndim == 3 and a.reshape(a.shape[0], -1, a.shape[-1]).shape == \
            ref.shape:
        out.append(("NHWC->tokens", a.reshape(ref.shape)))
    if not out:
        out.append(("reshaped", a.reshape(ref.shape)))
    return out


def _cosine(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(mean, worst) per-input cosine."""
    a2 = a.reshape(len(a), -1).astype(np.float64)
    b2 = b.reshape(len(b), -1).astype(np.float64)
    num = (a2 * b2).sum(1)
    den = np.linalg.norm(a2, axis=1) * np.linalg.norm(b2, axis=1)
    cos = np.where(den > 0, num / np.maximum(den, 1e-300), np.where(
        np.abs(a2).max(1) == np.abs(b2).max(1), 1.0, 0.0))
    return float(cos.mean()), float(cos.min())


def layer_metrics(got: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    mean, worst = _cosine(got, ref)
    err = got.astype(np.float64) - ref
    noise = float((err ** 2).sum())
    signal = float((ref.astype(np.float64) ** 2).sum())
    sqnr = 10 * np.log10(signal / noise) if noise > 0 else float("inf")
    return {"cosine": mean, "cosine_worst": worst, "sqnr_db": float(sqnr),
            "max_abs": float(np.abs(err).max())}


def _inputs(art: Artifact, choice: str) -> tuple[np.ndarray, str]:
    """NCHW float inputs: the golden set, its in-distribution part, or images in a folder."""
    from edgekit.quant.modes import CALIBRATED_MODES

    golden_in, _ = art.load_golden()
    x = next(iter(golden_in.values()))
    if art.manifest.inputs[0].layout == "NHWC":
        x = x.transpose(0, 3, 1, 2)
    kinds = art.golden_kinds()
    if choice == "auto":
        choice = "photos" if art.manifest.quant in CALIBRATED_MODES and kinds else "golden"
    if choice == "golden":
        return np.ascontiguousarray(x, dtype=np.float32), f"golden ({len(x)})"
    if choice == "photos":
        if not kinds:
            raise UsageError("this artifact's golden set does not say which inputs are photos",
                             hint="use --inputs golden, or a folder of images")
        keep = [i for i, k in enumerate(kinds) if k in IN_DISTRIBUTION]
        return np.ascontiguousarray(x[keep], dtype=np.float32), f"golden photos ({len(keep)})"
    folder = Path(choice)
    if not folder.is_dir():
        raise UsageError(f"--inputs {choice}: not golden, photos or a folder of images",
                         hint="pass --inputs golden|photos|DIR")
    from edgekit.calibration import from_folder

    imgs = from_folder(folder, art.manifest.preprocessing, 64).samples
    return np.ascontiguousarray(imgs, dtype=np.float32), f"{folder} ({len(imgs)})"


def _capture(art: Artifact, x: np.ndarray) -> tuple[dict[str, np.ndarray], list[str]]:
    fmt = art.manifest.format
    if fmt not in INTERMEDIATES:
        raise UsageError(f"edgekit diff reads {', '.join(INTERMEDIATES.list())} artifacts; "
                         f"this one is {fmt}", hint="export --to onnx or tflite to diff layers")
    layers = LayerMap.load(art.path)
    if layers is None and fmt == "onnx":  # older artifact: the exporter's node metadata
        from edgekit.layers.onnx_graph import load_graph, resolve

        ops, counts = resolve(load_graph(art.model_path))
        if counts["metadata"]:
            layers = LayerMap("onnx", "onnx node", ops, {})
    if layers is None:
        raise UsageError(f"{art.path.name} has no layers.json (exported before edgekit "
                         "recorded which module each op came from)",
                         hint="re-export it with this edgekit")
    return INTERMEDIATES.get(fmt).capture(art, layers, x)


def _kept_sites(art: Artifact) -> dict[str, str]:
    """{module: why} for the sites int8 left out of int8: 'float (sensitivity)' for those the
    `--keep-float auto` search picked, 'float' for the rest (kernels, plan), 'int16'."""
    q = art.manifest.exporter.get("quantization") or {}
    layers = LayerMap.load(art.path)
    reasons = q.get("float_reasons") or {}
    out: dict[str, str] = {}
    for kind, key in (("float", "float_sites"), ("int16", "int16_sites")):
        for site in q.get(key) or []:
            module = (layers.ops.get(site) if layers is not None else None) or (
                site if layers is not None and site in layers.modules else None)
            if module is None:
                continue
            picked = str(reasons.get(site, "")).startswith("sensitivity")
            label = f"{kind} (sensitivity)" if picked or kind == "int16" else kind
            if out.get(module, "").endswith("(sensitivity)"):
                continue  # a module with both: the search's pick is what the diff is about
            out[module] = label
    return out


def diff_artifact(path: Path, against: str = "torch", inputs: str = "auto",
                  threshold: float | None = None) -> dict[str, Any]:
    from edgekit.quant.modes import MODES

    art = Artifact.open(path)
    x, described = _inputs(art, inputs)
    got, order = _capture(art, x)
    if against == "torch":
        ref = torch_intermediates(rebuild_source(art), x)
        ref_name = f"timm fp32 ({art.manifest.model}, deploy passes, forward hooks)"
    else:
        if not Path(against).is_dir():
            raise UsageError(f"--against {against}: neither torch nor an artifact directory",
                             hint="pass --against torch, or an exported artifact's directory")
        other = Artifact.open(Path(against))
        ref, _ = _capture(other, x)
        ref_name = f"{other.path.name} ({other.manifest.format}, {other.manifest.quant})"
    mode = MODES.get(art.manifest.quant)
    bar = threshold if threshold is not None else (mode.cosine if mode else 0.99)
    kept = _kept_sites(art)
    rows: list[dict[str, Any]] = []
    for module in order:
        if module not in ref:
            continue
        # A square NHWC tensor (B, 16, 16, 16) fits NCHW both ways: the layout that matches
        # is the one where the values agree (the wrong one is near-orthogonal).
        fits = [(how, layer_metrics(a, ref[module])) for how, a in
                _layouts(got[module], ref[module])]
        if not fits:
            continue
        how, metrics = max(fits, key=lambda f: f[1]["cosine"])
        rows.append({"module": module, "depth": len(rows), "shape": list(ref[module].shape),
                     **metrics, "layout": how,
                     **({"kept": kept[module]} if module in kept else {})})
    first = next((r for r in rows if float(r["cosine"]) < bar), None)
    return {"artifact": str(art.path), "model": art.manifest.model,
            "format": art.manifest.format, "quant": art.manifest.quant,
            "against": ref_name, "inputs": described, "threshold": bar,
            "layers": rows, "first_below": first["module"] if first else None,
            "compared": len(rows), "in_graph": len(order),
            "kept_sites": kept}


def render_text(d: dict[str, Any], top: int = 10) -> str:
    rows = d["layers"]
    lines = [f"{Path(d['artifact']).name} vs {d['against']} on {d['inputs']}: {d['compared']} "
             f"layers compared ({d['in_graph']} modules in the graph)",
             f"  first layer under cosine {d['threshold']}: "
             + ("none" if d["first_below"] is None else d["first_below"] or "the model output")]
    out = next((r for r in rows if r["module"] == ""), None)
    if out is not None:
        lines.append(f"  model output: cosine {out['cosine']:.5f} (worst input "
                     f"{out['cosine_worst']:.5f})")
    lines.append(f"\n  worst {top} layers (cosine mean / worst input, SQNR dB, max-abs)")
    for r in sorted(rows, key=lambda r: r["cosine"])[:top]:
        kept = f"  [{r['kept']} in the artifact]" if r.get("kept") else ""
        lines.append(f"    {r['cosine']:.5f} / {r['cosine_worst']:.5f} {r['sqnr_db']:7.1f} "
                     f"{r['max_abs']:10.4g}  {r['module'] or '(model output)'}{kept}")
    return "\n".join(lines)
