"""Integer-only ONNX (`--quant int-only`): bit-exactness, fidelity and latency, per model.

For each model: the fp32, int8 and int-only ONNX artifacts from `edgekit export` (same seed,
same calibration), then
- bit-exact: onnxruntime's output of the int-only artifact vs the numpy int64 reference
  (edgekit/intonly/reference.py) of the same integer graph, on 50 inputs (real photo views for
  the full-size live-weight models; Fashion-MNIST test images for the small trained configs);
- fidelity: logit cosine of the int-only artifact vs timm fp32 on the same 50 inputs (mean and
  worst), and for the Fashion-MNIST configs top-1 on the 10 000 test images vs fp32;
- latency: fp32 vs int8 vs int-only in ORT, timed interleaved in one `edgekit bench` run.

    python bench/int_only.py [--models levit_128s,efficientformer_l1,...] [--update-readme]
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from edgekit.models.source import load_source
from readme_section import replace_section
from timing_args import other_models_rows, timing_config, timing_parser

from edgekit.accuracy import evaluate_artifact
from edgekit.artifact import Artifact
from edgekit.bench.collectors import BenchConfig
from edgekit.bench.run import run_bench
from edgekit.data import golden_inputs
from edgekit.intonly.convert import convert
from edgekit.intonly.graph import run_reference
from edgekit.pipeline import ExportRequest, _calibration, export_model
from edgekit.quant.config import QuantConfig
from edgekit.transforms.base import DEFAULT_PASSES, DeployPipeline
from edgekit.validate import logit_cosine

MODELS = ("levit_128s", "efficientformer_l1", "fmnist_levit", "fmnist_efficientformer",
          "fmnist_mobilevit")
RESULTS = Path(__file__).with_name("results") / "int_only.json"
N_INPUTS = 50


def integer_graph(name: str, int_only: Artifact, n: int = N_INPUTS
                  ) -> tuple[Any, np.ndarray, list[np.ndarray]]:
    """The integer graph an int-only artifact was built from, rebuilt the way the pipeline
    builds it (same calibration, the artifact's activation percentile), n inputs (photo views;
    Fashion-MNIST test images for its configs) and timm fp32's outputs on them."""
    src = load_source(name)
    _, calib, _ = _calibration(QuantConfig(), src.data_config, lambda s: None)
    x = golden_inputs(src.data_config, n, seed=1, noise_fraction=0.0)
    with torch.no_grad():
        reference_fp32 = [src.model(torch.from_numpy(x[i:i + 1])).numpy() for i in range(len(x))]
    example = torch.from_numpy(x[:1])
    DeployPipeline(DEFAULT_PASSES).run(src.model, torch.cat([example, example]))
    graph = convert(src.model, example, calib.samples,
                    percentile=int_only.manifest.exporter["activation_percentile"])
    return graph, x, reference_fp32


def run_model(name: str, out: Path, cfg: BenchConfig) -> dict[str, Any]:
    import onnxruntime as ort

    made = {}
    for quant in ("fp32", "int8", "int-only"):
        (o,) = export_model(ExportRequest(model=name, formats=("onnx",), quant=quant,
                                          out=out))
        made[quant] = o.artifact
        print(f"{name} {quant}: exported", flush=True)
    graph, x, reference_fp32 = integer_graph(name, made["int-only"])
    sess = ort.InferenceSession(str(made["int-only"].model_path),
                                providers=["CPUExecutionProvider"])
    input_name = sess.get_inputs()[0].name
    exact, cosines = 0, []
    for i in range(len(x)):
        got = sess.run(None, {input_name: x[i:i + 1]})[0]
        exact += int(np.array_equal(got, run_reference(graph, x[i:i + 1])))
        cosines.append(logit_cosine(got, reference_fp32[i]))
    row: dict[str, Any] = {
        "model": name, "inputs": len(x), "bit_exact": exact,
        "cosine_mean": float(np.mean(cosines)), "cosine_min": float(np.min(cosines)),
        "int_ops": made["int-only"].manifest.exporter["int_ops"],
        "size_mb": {q: round(a.manifest.size_bytes / 2**20, 2) for q, a in made.items()}}
    print(f"{name}: bit-exact {exact}/{len(x)}, cosine mean {row['cosine_mean']:.4f} "
          f"min {row['cosine_min']:.4f}", flush=True)
    if load_source(name).data_config.get("dataset") == "fmnist":
        row["top1"] = {q: evaluate_artifact(made[q].path).top1 for q in ("fp32", "int-only")}
        print(f"{name}: top-1 {row['top1']}", flush=True)
    results = run_bench([made[q].path for q in made], cfg=cfg, compare=True)
    row["median_ms"] = {q: r["median_ms"] for q, r in zip(made, results, strict=True)}
    row["stable"] = {q: r.get("stable") for q, r in zip(made, results, strict=True)}
    print(f"{name}: latency {row['median_ms']}", flush=True)
    return row


def main() -> None:
    ap = timing_parser(__doc__, MODELS)
    args = ap.parse_args()
    if args.readme_only:
        render(json.loads(RESULTS.read_text()))
        return
    cfg = timing_config(args)
    models = args.models.split(",")
    rows = other_models_rows(RESULTS, models)
    with tempfile.TemporaryDirectory(prefix="edgekit-int-only-") as tmp:
        for model in models:
            rows.append(run_model(model, Path(tmp) / model, cfg))
            payload = {"threads": args.threads, "rounds": args.rounds, "rows": rows}
            RESULTS.parent.mkdir(exist_ok=True)
            RESULTS.write_text(json.dumps(payload, indent=2) + "\n")
    if args.update_readme:
        render(payload)


def render(payload: dict[str, Any]) -> None:
    lines = [f"ONNX Runtime, batch 1, {payload['threads']} threads, this 2-core x86 machine; "
             "fp32 / int8 / int-only artifacts of a model timed interleaved in one run. "
             f"Bit-exact = int-only ORT output equal to the numpy reference in every bit, on "
             f"{N_INPUTS} inputs (photo views for the full-size live-weight models, test images "
             "for the Fashion-MNIST configs); cosine = vs timm fp32 on the same inputs.", "",
             "| model | bit-exact | cosine mean / worst | top-1 fp32 → int-only | "
             "fp32 ms | int8 ms | int-only ms | MB fp32 / int-only |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in payload["rows"]:
        ms = r["median_ms"]
        top1 = (f"{r['top1']['fp32']:.2f} → {r['top1']['int-only']:.2f}" if "top1" in r
                else "—")
        lines.append(f"| {r['model']} | {r['bit_exact']}/{r['inputs']} | "
                     f"{r['cosine_mean']:.4f} / {r['cosine_min']:.4f} | {top1} | "
                     f"{ms['fp32']:.2f} | {ms['int8']:.2f} | {ms['int-only']:.2f} | "
                     f"{r['size_mb']['fp32']} / {r['size_mb']['int-only']} |")
    replace_section("int-only", "\n".join(lines))


if __name__ == "__main__":
    main()
