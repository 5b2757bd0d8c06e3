"""Core ML: coremltools 9 `ct.convert` of the torch.export program (jit.trace as fallback) to an
ML program `.mlpackage` (a directory).

Core ML prediction exists only on macOS. On Linux the artifact is validated structurally: the
package loads with skip_model_load, every op belongs to the MIL opset of the deployment target,
and the input/output specs match; the manifest then says
`validated: "structure-only (numerics need macOS)"`.
"""

from __future__ import annotations

import contextlib
import io
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

from edgekit.artifact import TensorSpec
from edgekit.errors import ArtifactError, ExportError, UsageError
from edgekit.exporter import ExportOptions, ExportResult

_SPEC_DTYPES = {65568: "float32", 65552: "float16", 131104: "int32", 65600: "float64"}


def _target(name: str) -> Any:
    import coremltools as ct

    target = getattr(ct.target, name, None)
    if target is None:
        known = [t.name for t in ct.target]
        raise UsageError(f"unknown Core ML deployment target '{name}'",
                         hint=f"choose one of {', '.join(known)}")
    return target


def _quiet() -> Any:
    """coremltools prints progress bars and proxy warnings; keep stdout clean for --json."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    return stack


def _drop_aliases(exported: Any) -> Any:
    """aten.alias is an identity view that coremltools' torch frontend has no converter for
    (seen on EfficientViT-MSRA): route its users to its input and erase it."""
    from edgekit.support import op_name

    graph = exported.graph_module.graph
    for node in list(graph.nodes):
        if node.op == "call_function" and op_name(node.target) in ("alias", "alias_copy"):
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)
    exported.graph_module.recompile()
    return exported


class CoreMLExporter:
    format: ClassVar[str] = "coreml"
    filename: ClassVar[str] = "model.mlpackage"

    def export(self, model: Any, example: Any, options: ExportOptions, out_dir: Path
               ) -> ExportResult:
        import coremltools as ct
        import torch

        precision = {"fp16": ct.precision.FLOAT16, "fp32": ct.precision.FLOAT32}[
            options.compute_precision]
        target = _target(options.deployment_target)
        path = out_dir / self.filename
        frontend = "torch.export"
        errors = []
        mlmodel = None
        with _quiet(), torch.no_grad():
            try:
                exported = torch.export.export(model, (example,), strict=False)
                exported = _drop_aliases(exported.run_decompositions({}))
                mlmodel = ct.convert(exported, convert_to="mlprogram",
                                     minimum_deployment_target=target,
                                     compute_precision=precision)
            except Exception as exc:  # noqa: BLE001 - fall back to the TorchScript frontend
                errors.append(f"torch.export: {type(exc).__name__}: {str(exc)[:200]}")
                frontend = "jit.trace"
                try:
                    traced = torch.jit.trace(model, example)
                    mlmodel = ct.convert(traced, convert_to="mlprogram",
                                         inputs=[ct.TensorType(name=options.input_name,
                                                               shape=tuple(example.shape))],
                                         minimum_deployment_target=target,
                                         compute_precision=precision)
                except Exception as exc2:  # noqa: BLE001
                    errors.append(f"jit.trace: {type(exc2).__name__}: {str(exc2)[:200]}")
        if mlmodel is None:
            raise ExportError("coremltools could not convert the model (" + "; ".join(errors)
                              + ")", hint="run `edgekit check MODEL --to coreml`")
        spec = mlmodel.get_spec()
        renames = [(spec.description.input[0].name, options.input_name),
                   (spec.description.output[0].name, options.output_name)]
        for old, new in renames:
            if old != new:
                ct.utils.rename_feature(spec, old, new)
        mlmodel = ct.models.MLModel(spec, weights_dir=mlmodel.weights_dir,
                                    skip_model_load=True)
        mlmodel.short_description = "exported by edgekit"
        mlmodel.save(str(path))
        info = self.describe(path)
        inputs = tuple(TensorSpec(t["name"], tuple(t["shape"]), t["dtype"], "NCHW")
                       for t in info["inputs"])
        outputs = tuple(TensorSpec(t["name"], tuple(t["shape"]), t["dtype"])
                        for t in info["outputs"])
        return ExportResult(
            file=self.filename, inputs=inputs, outputs=outputs,
            versions={"coremltools": ct.__version__},
            details={"exporter": f"coremltools ct.convert via {frontend}", "frontend": frontend,
                     "frontend_errors": errors, "compute_precision": options.compute_precision,
                     "deployment_target": options.deployment_target, "ops": info["ops"]})

    @classmethod
    def check(cls, exported: Any) -> Any:
        """ATen ops coremltools' torch frontend has no converter for."""
        with _quiet():
            from coremltools.converters.mil.frontend.torch.torch_op_registry import (
                _TORCH_OPS_REGISTRY,
            )

        from edgekit.support import Support, call_targets, histogram, op_name

        decomposed = _drop_aliases(exported.run_decompositions({}))
        targets = list(call_targets(decomposed.graph_module))
        missing = Counter(op_name(t) for t in targets
                          if op_name(t) not in _TORCH_OPS_REGISTRY
                          and op_name(t).rstrip("_") not in _TORCH_OPS_REGISTRY)
        return Support("coreml", dict(histogram(targets).most_common()), dict(missing),
                       note="compute-unit placement (CPU/GPU/ANE) is decided on device")

    @classmethod
    def sniff(cls, path: Path) -> None:
        if path.suffix != ".mlpackage" or not path.is_dir():
            raise ArtifactError("not a Core ML package (expected a .mlpackage directory)",
                                path=path, hint="pass a .mlpackage or an artifact directory")
        if not (path / "Manifest.json").is_file():
            raise ArtifactError("not a Core ML package (no Manifest.json)", path=path,
                                hint="re-export it")

    @classmethod
    def describe(cls, path: Path) -> dict[str, Any]:
        with _quiet():
            import coremltools as ct

            cls.sniff(path)
            try:
                model = ct.models.MLModel(str(path), skip_model_load=True)
                spec = model.get_spec()
            except Exception as exc:  # noqa: BLE001 - protobuf / package errors
                raise ArtifactError(f"not a readable Core ML package ({str(exc)[:300]})",
                                    path=path, hint="re-export it") from None

        def feature(f: Any) -> dict[str, Any]:
            arr = f.type.multiArrayType
            return {"name": f.name, "shape": [int(s) for s in arr.shape],
                    "dtype": _SPEC_DTYPES.get(arr.dataType, str(arr.dataType))}

        ops: Counter[str] = Counter()
        opsets = []
        for fn in spec.mlProgram.functions.values():
            opsets.append(fn.opset)
            block = fn.block_specializations[fn.opset]
            ops.update(op.type for op in block.operations)
        consts = ops.pop("const", 0)
        return {
            "format": "coreml", "file": str(path),
            "size_bytes": sum(p.stat().st_size for p in path.rglob("*") if p.is_file()),
            "specification_version": spec.specificationVersion, "opsets": opsets,
            "inputs": [feature(f) for f in spec.description.input],
            "outputs": [feature(f) for f in spec.description.output],
            "ops": dict(ops.most_common()), "n_nodes": sum(ops.values()),
            "initializer_dtypes": {"const": consts}, "params": 0,
        }

    @classmethod
    def verify_structure(cls, path: Path, inputs: tuple[TensorSpec, ...],
                         outputs: tuple[TensorSpec, ...], deployment_target: str) -> str:
        """What Linux can check; returns "" when everything holds, else the problem."""
        from coremltools.converters.mil.mil.ops.registry import SSAOpRegistry

        info = cls.describe(path)
        target = _target(deployment_target)
        unknown = [op for op in info["ops"] if op not in SSAOpRegistry.core_ops]
        too_new = [op for op in info["ops"] if op in SSAOpRegistry.core_ops
                   and min(SSAOpRegistry.core_ops[op]) > target]
        problems = []
        if unknown or too_new:
            problems.append(f"ops outside the {deployment_target} opset: {unknown + too_new}")
        if info["specification_version"] > target.value:
            problems.append(f"specification version {info['specification_version']} is newer "
                            f"than {deployment_target}")
        for kind, got, want in (("input", info["inputs"], inputs),
                                ("output", info["outputs"], outputs)):
            got_specs = [(t["name"], tuple(t["shape"])) for t in got]
            want_specs = [(t.name, tuple(t.shape)) for t in want]
            if got_specs != want_specs:
                problems.append(f"{kind}s {got_specs} != manifest {want_specs}")
        return "; ".join(problems)


def quantize_weights_int8(path: Path, on_step: Any = None) -> dict[str, Any]:
    """`--quant w8` for Core ML: coremltools' linear_quantize_weights on the written package
    (int8 per-output-channel symmetric weights, `constexpr_affine_dequantize` /
    `constexpr_blockwise_shift_scale` ops the runtime expands at load; activations stay in the
    compute precision). Runs on Linux: it rewrites the MIL program, no prediction needed."""
    import shutil
    import tempfile

    import coremltools as ct
    import coremltools.optimize as cto

    before = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    # weights under 2048 elements (biases, norms, tiny heads) stay float: int8 saves nothing
    threshold = 2048
    config = cto.coreml.OptimizationConfig(global_config=cto.coreml.OpLinearQuantizerConfig(
        mode="linear_symmetric", dtype="int8", granularity="per_channel",
        weight_threshold=threshold))
    with _quiet():
        try:
            model = ct.models.MLModel(str(path), skip_model_load=True)
            compressed = cto.coreml.linear_quantize_weights(model, config=config)
        except Exception as exc:  # noqa: BLE001 - MIL pass errors are many types
            raise ExportError(f"coremltools could not quantize the weights: "
                              f"{type(exc).__name__}: {str(exc)[:300]}",
                              hint="export --quant fp16 for Core ML instead") from exc
        staged = Path(tempfile.mkdtemp(prefix="edgekit-coreml-w8-")) / path.name
        try:
            compressed.save(str(staged))
            shutil.rmtree(path)
            shutil.move(str(staged), str(path))
        finally:
            shutil.rmtree(staged.parent, ignore_errors=True)
    info = CoreMLExporter.describe(path)
    constexpr = {op: n for op, n in info["ops"].items() if op.startswith("constexpr_")}
    if not constexpr:
        raise ExportError("coremltools' linear_quantize_weights left every weight float",
                          hint=f"the model has no weight of {threshold}+ elements; export "
                               "--quant fp16 instead")
    return {"quantizer": "coremltools.optimize.coreml.linear_quantize_weights",
            "scheme": "int8 weights, per output channel, symmetric; activations in the "
                      "compute precision",
            "weight_threshold": threshold, "dequantize_ops": constexpr,
            "size_bytes_before": before, "size_bytes_after": info["size_bytes"]}
