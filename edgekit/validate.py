"""Numerical validation of an artifact in its real runtime against the golden reference.

Written once, against any Runtime. The runtime runs in an isolated child process, because the
artifact may be untrusted (see isolation.py).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.artifact import Artifact, ValidationReport
from edgekit.errors import MissingDependency, UsageError
from edgekit.exporter import COMPANIONS, EXPORTERS
from edgekit.isolation import run_isolated
from edgekit.quant.modes import CALIBRATED_MODES, MODES
from edgekit.runtime import DEFAULT_RUNTIME, RUNTIMES


def logit_cosine(output: np.ndarray, reference: np.ndarray) -> float:
    """Cosine of two outputs, flattened, in float64 (0 for an all-zero pair)."""
    a = np.asarray(output, dtype=np.float64).ravel()
    b = np.asarray(reference, dtype=np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


# Per quantization mode: minimum per-sample cosine and top-1 agreement with the fp32 reference
# (quant/modes.py: fp16 and w8 0.999, w8a16 0.995, int8 and int-only 0.98).
THRESHOLDS: dict[str, dict[str, float]] = {
    m.name: {"cosine": m.cosine, "top1_agreement": m.top1_agreement} for m in MODES.values()}
_SQNR_CAP_DB = 300.0

# Modes whose activation ranges are calibrated on data: judged on the in-distribution golden
# inputs (photos, test images). N(0,1) noise in normalised space drives activations far outside
# any range calibrated on photos, so a static int8 range clips it: LeViT-128S int8 with timm's
# init kept cosine ≥ 0.994 on every photo and 0.979 on noise. Its cosine is still reported
# (cosine_noise), and fp32/fp16 stay judged on every input: they have no ranges to clip.
# (quant/modes.py CALIBRATED_MODES: w8a16, int8, int-only)


def decisive_samples(reference: np.ndarray, quant: str) -> np.ndarray:
    """Rows of 2-D reference logits whose top-1 the mode's cosine tolerance cannot flip.

    A candidate that just meets the cosine threshold c carries an error of about
    sqrt(2(1-c)) times the row's spread on each logit, so about 2*sqrt(1-c) spreads on the
    difference of two logits. A sample whose reference top-1 leads top-2 by less than that is a
    near-tie: its flip is already allowed by the cosine bound, and counting it would fail
    random-weight models on ties rather than on errors. The margin is fixed by the mode, never by
    the candidate's own error, so a worse candidate is not excused more.
    """
    ref = np.asarray(reference, dtype=np.float64)
    if ref.shape[1] < 2:
        return np.zeros(ref.shape[0], dtype=bool)
    top2 = np.sort(ref, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    return margin > 2.0 * math.sqrt(1.0 - THRESHOLDS[quant]["cosine"]) * ref.std(axis=1)
STRUCTURE_ONLY = "structure-only (numerics need macOS)"


def compare(reference: dict[str, np.ndarray], got: dict[str, np.ndarray], *, quant: str,
            runtime: str, kinds: tuple[str, ...] | None = None) -> ValidationReport:
    """Metrics over all outputs: max-abs, max-rel (to the output scale), worst per-sample cosine,
    SQNR, top-1 agreement (on 2-D logits, over the samples that are not near-ties: see
    decisive_samples). NaN/Inf anywhere fails: NaN never compares equal. For CALIBRATED_MODES,
    inputs whose kind is "noise" are measured (cosine_noise) but not judged; kinds that do not
    match the inputs one to one are ignored (every input judged)."""
    thresholds = THRESHOLDS[quant]
    n_rows = int(next(iter(reference.values())).shape[0]) if reference else 0
    noise_rows = np.zeros(n_rows, dtype=bool)
    if quant in CALIBRATED_MODES and kinds is not None and len(kinds) == n_rows:
        noise_rows = np.asarray([k == "noise" for k in kinds], dtype=bool)
        if noise_rows.all():
            noise_rows[:] = False  # nothing in-distribution: judge what there is
    names = list(reference)
    missing = [n for n in names if n not in got]
    if missing:
        return ValidationReport(math.inf, math.inf, -1.0, -_SQNR_CAP_DB, 0.0, 0, False, runtime,
                                thresholds, reason=f"runtime produced no output {missing}")
    max_abs = 0.0
    scale = 0.0
    cosines: list[float] = []
    noise_cosines: list[float] = []
    signal = noise = 0.0
    agree = total = 0
    logits = False
    reason = ""
    n_inputs = int(next(iter(reference.values())).shape[0])
    for name in names:
        ref = np.asarray(reference[name], dtype=np.float64)
        out = np.asarray(got[name], dtype=np.float64)
        if out.shape != ref.shape:
            return ValidationReport(math.inf, math.inf, -1.0, -_SQNR_CAP_DB, 0.0, n_inputs,
                                    False, runtime, thresholds,
                                    reason=f"output '{name}' shape {out.shape} != {ref.shape}")
        if not np.isfinite(out).all() or not np.isfinite(ref).all():
            bad = "runtime output" if not np.isfinite(out).all() else "reference"
            return ValidationReport(math.nan, math.nan, math.nan, math.nan, 0.0, n_inputs,
                                    False, runtime, thresholds,
                                    reason=f"NaN/Inf in the {bad} of '{name}'")
        r2 = ref.reshape(ref.shape[0], -1)
        o2 = out.reshape(out.shape[0], -1)
        denom = np.linalg.norm(r2, axis=1) * np.linalg.norm(o2, axis=1)
        cos = np.where(denom > 0, (r2 * o2).sum(1) / np.maximum(denom, 1e-300),
                       np.where(np.abs(r2 - o2).max(1) == 0, 1.0, 0.0))
        rows = noise_rows if len(noise_rows) == ref.shape[0] else np.zeros(ref.shape[0], bool)
        noise_cosines.extend(cos[rows].tolist())
        cos, ref, out = cos[~rows], ref[~rows], out[~rows]
        diff = out - ref
        max_abs = max(max_abs, float(np.abs(diff).max()))
        scale = max(scale, float(np.abs(ref).max()))
        cosines.extend(cos.tolist())
        signal += float((ref**2).sum())
        noise += float((diff**2).sum())
        if ref.ndim == 2:
            judged = decisive_samples(ref, quant)
            agree += int((ref.argmax(1) == out.argmax(1))[judged].sum())
            total += int(judged.sum())
            logits = True
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else math.inf)
    cosine = float(min(cosines)) if cosines else 1.0
    sqnr = _SQNR_CAP_DB if noise == 0 else min(_SQNR_CAP_DB, 10 * math.log10(signal / noise))
    # Logits whose every sample is a near-tie leave top-1 unjudged (NaN), not passed.
    top1 = agree / total if total else (math.nan if logits else 1.0)
    ok = cosine >= thresholds["cosine"] and (math.isnan(top1)
                                             or top1 >= thresholds["top1_agreement"])
    if not ok:
        reason = (f"cosine {cosine:.6f} (need ≥ {thresholds['cosine']}), top-1 agreement "
                  f"{top1:.3f} over {total} decisive samples "
                  f"(need ≥ {thresholds['top1_agreement']})")
    judged_inputs = n_inputs - int(noise_rows.sum()) if noise_cosines else None
    if not ok and judged_inputs is not None:
        reason += f" on the {judged_inputs} in-distribution inputs"
    return ValidationReport(max_abs, max_rel, cosine, sqnr, top1, n_inputs, ok, runtime,
                            thresholds, reason, top1_judged=total,
                            cosine_noise=float(min(noise_cosines)) if noise_cosines else None,
                            judged_inputs=judged_inputs)


def run_golden(fmt: str, runtime_name: str, model_path: str, inputs: dict[str, np.ndarray],
               batch: int, threads: int | None) -> dict[str, np.ndarray]:
    """Child-process body: verify the file, load it in the runtime, run the golden inputs."""
    return run_golden_files([(fmt, None, runtime_name, model_path)], inputs, (batch,),
                            threads)[0][0]


def _run_chunks(session: Any, inputs: dict[str, np.ndarray], batch: int
                ) -> dict[str, np.ndarray]:
    n = next(iter(inputs.values())).shape[0]
    chunks: dict[str, list[np.ndarray]] = {}
    for start in range(0, n, batch):
        outs = session.run({k: np.ascontiguousarray(v[start:start + batch])
                            for k, v in inputs.items()})
        for k, v in outs.items():
            chunks.setdefault(k, []).append(np.asarray(v))
    return {k: np.concatenate(v) for k, v in chunks.items()}


def _tflm_arena(model_path: str) -> int:
    from edgekit.runtimes.tflm import measure_arena

    return measure_arena(model_path)


def runtime_extras(artifact: Artifact, runtime: str) -> dict[str, Any]:
    """What a runtime reports beyond the outputs: TFLite Micro's tensor arena."""
    if runtime != "tflm":
        return {}
    return {"tflm_arena_bytes": run_isolated(
        _tflm_arena, str(artifact.model_path), what=f"tflm arena of {artifact.manifest.file}",
        path=str(artifact.model_path))}


def validate_artifact(artifact: Artifact, *, runtime: str | None = None,
                      threads: int | None = None, timeout: float = 900.0) -> ValidationReport:
    fmt = artifact.manifest.format
    runtime_name = runtime or DEFAULT_RUNTIME.get(fmt)
    if runtime_name is None:
        raise UsageError(f"no runtime can validate format '{fmt}' here",
                         hint="see `edgekit doctor`")
    runtime_cls = RUNTIMES.get(runtime_name)
    if fmt not in runtime_cls.formats:
        raise UsageError(f"runtime {runtime_name} does not run {fmt} files",
                         hint=f"it runs {', '.join(runtime_cls.formats)}; `edgekit doctor` "
                              "lists every runtime")
    if not runtime_cls.available():
        exporter = EXPORTERS.get(fmt)
        verify = getattr(exporter, "verify_structure", None)
        if verify is None:
            raise MissingDependency(f"runtime {runtime_name} is not available here",
                                    path=artifact.path, hint="see `edgekit doctor`")
        m = artifact.manifest
        problem = run_isolated(verify, artifact.model_path, m.inputs, m.outputs,
                               m.exporter.get("deployment_target", "iOS17"),
                               what=f"checking {m.file}", path=str(artifact.model_path),
                               timeout=timeout)
        nan = math.nan
        return ValidationReport(nan, nan, nan, nan, nan, 0,
                                False if problem else STRUCTURE_ONLY, runtime_name,
                                {}, reason=problem)
    inputs, reference = artifact.load_golden()
    batches = validation_batches(artifact.manifest)
    companions = artifact.manifest.exporter.get("companions") or []
    check_companion_files(artifact, companions)
    # the model file, then each companion file (model.ort beside model.onnx) in its runtime:
    # one child process runs them all
    jobs: list[tuple[str, str | None, str, str]] = [
        (fmt, None, runtime_name, str(artifact.model_path))]
    jobs += [(fmt, c["kind"], c["runtime"], str(artifact.path / c["file"])) for c in companions]
    runs_per_file = run_isolated(run_golden_files, jobs, inputs, batches, threads,
                                 what=f"{runtime_name} running {artifact.manifest.file}"
                                 + (f" and {len(companions)} companion file(s)"
                                    if companions else ""),
                                 path=str(artifact.model_path), timeout=timeout)
    verdicts = [[judge(artifact, reference, got, runtime) for got in runs]
                for (_, _, runtime, _), runs in zip(jobs, runs_per_file, strict=True)]
    reports = verdicts[0]
    report = reports[0] if len(reports) == 1 else _across_batches(
        batches, reports, runs_per_file[0])
    return with_companions(report, companions, verdicts[1:], batches)


def judge(artifact: Artifact, reference: dict[str, np.ndarray], got: dict[str, np.ndarray],
          runtime: str) -> ValidationReport:
    """The golden comparison (and bit-exactness) of one run's outputs."""
    # Outputs are matched by position: runtimes may rename them.
    got_by_ref = dict(zip(reference, got.values(), strict=False))
    report = compare(reference, got_by_ref, quant=artifact.manifest.quant, runtime=runtime,
                     kinds=artifact.golden_kinds())
    return with_exactness(report, artifact.golden_exact(), got_by_ref)


def check_companion_files(artifact: Artifact, companions: list[dict[str, Any]]) -> None:
    from edgekit.artifact import sha256_path
    from edgekit.errors import ArtifactError

    for c in companions:
        name = str(c.get("file", ""))
        if c.get("kind") not in COMPANIONS or Path(name).name != name or not name:
            raise ArtifactError(f"the manifest lists an unknown companion file {name!r}",
                                path=artifact.path, hint="re-export the artifact")
        path = artifact.path / name
        if not path.is_file() or sha256_path(path) != c.get("sha256"):
            raise ArtifactError(f"{name} is missing or does not match the manifest's sha256",
                                path=path,
                                hint="re-export the artifact; it was modified or truncated")


def with_companions(report: ValidationReport, companions: list[dict[str, Any]],
                     verdicts: list[list[ValidationReport]], batches: tuple[int, ...]
                     ) -> ValidationReport:
    """The artifact is validated only if each companion file is, at every batch."""
    import dataclasses

    if not companions:
        return report
    files: dict[str, Any] = {}
    failures = []
    for c, per_batch in zip(companions, verdicts, strict=True):
        worst = min(per_batch, key=lambda r: (r.validated is not False, r.cosine))
        files[c["file"]] = {"validated": worst.validated, "cosine": worst.cosine,
                            "runtime": worst.runtime, "bit_exact": worst.bit_exact,
                            "batches": list(batches)}
        if worst.validated is False:
            failures.append(f"{c['file']}: {worst.reason}")
    if failures and report.validated is not False:
        report = dataclasses.replace(report, validated=False, reason="; ".join(failures))
    return dataclasses.replace(report, files=files)


def validation_batches(manifest: Any) -> tuple[int, ...]:
    """The batch sizes an artifact is validated at: its static batch, or 1 and the bound of a
    dynamic batch (the manifest's input has -1 there)."""
    dim = int(manifest.inputs[0].shape[0]) if manifest.inputs[0].shape else 1
    if dim > 0:
        return (dim,)
    bound = (manifest.exporter.get("dynamic_batch") or {}).get("max")
    return (1, int(bound)) if bound else (1,)


def run_golden_files(jobs: list[tuple[str, str | None, str, str]],
                     inputs: dict[str, np.ndarray], batches: tuple[int, ...],
                     threads: int | None) -> list[list[dict[str, np.ndarray]]]:
    """Child-process body: per (format, companion kind or None, runtime, file), the golden
    inputs at each batch size in one loaded session. A model file is parsed and checked by its
    exporter's describe() first, a companion file sniffed."""
    results = []
    for fmt, companion, runtime_name, model_path in jobs:
        if companion is not None:
            COMPANIONS.get(companion).sniff(Path(model_path))
        else:
            EXPORTERS.get(fmt).describe(Path(model_path))  # parse + safety checks
        session = RUNTIMES.get(runtime_name)().load(Path(model_path), threads)
        results.append([_run_chunks(session, inputs, b) for b in batches])
    return results


def _across_batches(batches: tuple[int, ...], reports: list[ValidationReport],
                    runs: list[dict[str, np.ndarray]]) -> ValidationReport:
    """One verdict for a dynamic batch: the batch-1 report, failed if any batch failed, with
    each batch's cosine and how far the batches' outputs are from each other."""
    import dataclasses

    first = [np.asarray(v, dtype=np.float64) for v in runs[0].values()]
    between = max(float(np.abs(a - np.asarray(b, dtype=np.float64)).max())
                  for run in runs[1:] for a, b in zip(first, run.values(), strict=False))
    summary: dict[str, Any] = {str(b): {"cosine": r.cosine, "validated": r.validated}
                               for b, r in zip(batches, reports, strict=True)}
    summary["max_abs_between_batches"] = between
    base = reports[0]
    failed = [(b, r) for b, r in zip(batches, reports, strict=True) if r.validated is False]
    if failed and base.validated is not False:
        b, r = failed[0]
        base = dataclasses.replace(base, validated=False, reason=f"at batch {b}: {r.reason}")
    return dataclasses.replace(base, batches=summary)


def with_exactness(report: ValidationReport, exact: dict[str, np.ndarray],
                   got: dict[str, np.ndarray]) -> ValidationReport:
    """An integer-only artifact must also reproduce the integer reference bit for bit (its
    golden.npz "exact." outputs): any differing value fails it, whatever the cosine."""
    if not exact:
        return report
    import dataclasses

    diffs = []
    for (name, want), out in zip(exact.items(), got.values(), strict=False):
        out = np.asarray(out)
        if out.shape != want.shape:
            diffs.append(f"'{name}' shape {out.shape} != {want.shape}")
        elif not np.array_equal(out, want):
            worst = float(np.abs(out.astype(np.float64) - want).max())
            diffs.append(f"'{name}' differs from the integer reference in "
                         f"{int((out != want).sum())} of {want.size} values (max |Δ| {worst:g})")
    if not diffs:
        return dataclasses.replace(report, bit_exact=True)
    reason = "not bit-exact: " + "; ".join(diffs)
    return dataclasses.replace(report, bit_exact=False, validated=False,
                               reason=f"{report.reason}; {reason}" if report.reason else reason)
