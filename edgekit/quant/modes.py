"""The precision ladder: what each `--quant` mode means, independent of the target format.

A mode says what is stored and computed in which type and how strictly its artifacts are
judged against timm fp32; how a format does it is a recipe (quant/recipes.py). This module
imports nothing heavy: the CLI, the validator and the on-device agent read it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QuantMode:
    name: str
    summary: str
    weights: str  # the stored weight type
    activations: str  # the type activations are computed in
    # activation ranges from a calibration set: such a mode is judged on in-distribution golden
    # inputs only (validate.py), and takes --calib / --calib-n / --calib-method
    calibrated: bool
    cosine: float  # validation: minimum per-sample logit cosine with timm fp32
    top1_agreement: float  # validation: minimum top-1 agreement on decisive samples


MODES: dict[str, QuantMode] = {m.name: m for m in (
    QuantMode("fp32", "the float model as trained", "fp32", "fp32", False, 0.99999, 1.0),
    QuantMode("fp16", "half-precision weights (and compute where the runtime has fp16 "
              "kernels)", "fp16", "fp16 or fp32 (per runtime)", False, 0.999, 0.95),
    QuantMode("w8", "weight-only int8: int8 per-channel weights, float activations (no "
              "calibration; some runtimes quantize activations on the fly)", "int8",
              "fp32 (or int8 per inference, dynamic range)", False, 0.999, 0.95),
    QuantMode("w8a16", "int16 activations × int8 per-channel weights, calibrated", "int8",
              "int16", True, 0.995, 0.9),
    QuantMode("int8", "int8 activations × int8 per-channel weights, calibrated, with the "
              "hybrid-aware float islands", "int8", "int8 (float where kept)", True, 0.98,
              0.9),
    QuantMode("int-only", "integer-only graph: no float op between the input and the output "
              "(NPUs, microcontrollers)", "int8", "int8/int32", True, 0.98, 0.8),
)}
QUANT_MODES: tuple[str, ...] = tuple(MODES)
CALIBRATED_MODES: tuple[str, ...] = tuple(m.name for m in MODES.values() if m.calibrated)
# `--mixed`: where the int8 sensitivity search (`--keep-float auto`) puts the sites it picks.
# float: they leave quantization; int16: int16 activations (the target must have an int16
# path); auto: int16 where the target has one, else float.
MIXED_CHOICES = ("float", "int16", "auto")
