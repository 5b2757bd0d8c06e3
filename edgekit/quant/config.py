"""QuantConfig: one description of "int8" that every target's own quantizer is driven by."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from edgekit.errors import UsageError
from edgekit.quant.modes import MIXED_CHOICES

CALIB_METHODS = ("auto", "minmax", "percentile", "entropy", "mse")
# `fast`: op kinds whose int8 kernel in the target runtime is slower than its fp32 one stay
# float (each target lists them with the measurement, quant/targets.py). `all`: quantize them.
INT8_PLANS = ("fast", "all")
# The instruction set `fast` is decided for: which int8 kernels lose to fp32 differs between
# x86 (measured in ms here) and ARM (measured in instructions on the emulated device).
INT8_ISAS = ("arm64", "x86_64")
# Op kinds a user can keep in float (`--keep-float softmax,add`), mapped per target by the
# target's quantizer. `auto` = per-layer sensitivity analysis against the accuracy budget.
KEEP_FLOAT_KINDS = ("conv", "dwconv", "linear", "matmul", "add", "mul", "softmax", "pool",
                    "concat", "gelu")


@dataclass(frozen=True)
class QuantConfig:
    scheme: str = "int8"
    calib: str = "auto"  # folder, `photos` (built-in), `fmnist`; auto = the model's domain
    calib_n: int = 64
    calib_method: str = "auto"  # auto = the measured best per target (see quant/targets)
    percentile: float = 99.99
    keep_float: str | tuple[str, ...] = "auto"  # "auto" | "none" | op kinds
    int8_io: bool = False  # TFLite: int8 input/output tensors (caller (de)quantizes)
    plan: str = "fast"  # INT8_PLANS
    isa: str = "arm64"  # INT8_ISAS: the CPU the artifact is for (phones and boards by default)
    per_channel: bool = True
    repq: bool = True  # RepQ-ViT post-LayerNorm scale reparameterization (quant/repq.py)
    # `--keep-float auto` keeps the most damaging layers in float until the int8 model's mean
    # logit cosine to fp32 on held-out calibration samples reaches this.
    min_cosine: float = 0.995
    # where the sensitivity search puts the sites it picks (quant/modes.py MIXED_CHOICES):
    # float (leave quantization), int16 (int16 activations), auto (int16 where the target can)
    mixed: str = "float"
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.scheme != "int8":
            raise UsageError(f"unknown quantization scheme '{self.scheme}'", hint="use int8")
        if self.calib_method not in CALIB_METHODS:
            raise UsageError(f"unknown --calib-method '{self.calib_method}'",
                             hint=f"choose from {', '.join(CALIB_METHODS)}")
        if self.plan not in INT8_PLANS:
            raise UsageError(f"unknown --int8-plan '{self.plan}'",
                             hint=f"choose from {', '.join(INT8_PLANS)}")
        if self.isa not in INT8_ISAS:
            raise UsageError(f"unknown --int8-isa '{self.isa}'",
                             hint=f"choose from {', '.join(INT8_ISAS)}")
        if self.mixed not in MIXED_CHOICES:
            raise UsageError(f"unknown --mixed '{self.mixed}'",
                             hint=f"choose from {', '.join(MIXED_CHOICES)}")
        if not 2 <= self.calib_n <= 4096:
            raise UsageError(f"--calib-n {self.calib_n} is out of range",
                             hint="use 2..4096 (32-128 is typical)")
        if not 90.0 <= self.percentile < 100.0:
            raise UsageError(f"percentile {self.percentile} is out of range",
                             hint="use 99.9..99.999")
        if isinstance(self.keep_float, tuple):
            bad = [k for k in self.keep_float if k not in KEEP_FLOAT_KINDS]
            if bad:
                raise UsageError(f"--keep-float: unknown op kind(s) {', '.join(bad)}",
                                 hint=f"use auto, none, or a comma list of "
                                      f"{', '.join(KEEP_FLOAT_KINDS)}")
        elif self.keep_float not in ("auto", "none"):
            raise UsageError(f"--keep-float '{self.keep_float}' is not understood",
                             hint="use auto, none, or a comma list of op kinds")

    @staticmethod
    def parse_keep_float(text: str) -> str | tuple[str, ...]:
        text = text.strip().lower()
        if text in ("auto", "none"):
            return text
        return tuple(k.strip() for k in text.split(",") if k.strip())

    @property
    def kept_kinds(self) -> tuple[str, ...]:
        return self.keep_float if isinstance(self.keep_float, tuple) else ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["keep_float"] = list(self.keep_float) if isinstance(self.keep_float, tuple) \
            else self.keep_float
        return d
