"""`.ekr`: the integer-only graph as edgekit's native runtime runs it (kernels_arm/runtime).

Only `--quant int-only` produces it (the pipeline lowers the same IntGraph it writes as integer
ONNX: edgekit/intonly/export.py); the file format is edgekit/intonly/ekr.py."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

from edgekit.errors import ArtifactError, ExportError
from edgekit.exporter import ExportOptions, ExportResult, check_file_kind

# Ops the deploy passes remove before the integer translation sees the graph (BN folded into
# the conv/linear before it, dropout stripped): not a missing translation.
FOLDED_BEFORE_TRANSLATION = {"batch_norm", "_native_batch_norm_legit_no_training", "dropout"}


class EkrExporter:
    format: ClassVar[str] = "ekr"
    filename: ClassVar[str] = "model.ekr"

    def export(self, model: Any, example: Any, options: ExportOptions, out_dir: Path
               ) -> ExportResult:
        raise ExportError("the .ekr runtime runs integer-only graphs",
                          hint="export with --quant int-only --to ekr")

    @classmethod
    def check(cls, exported: Any) -> Any:
        """aten ops the integer-only translator (intonly/convert.py) has no entry for."""
        from edgekit.intonly.convert import TRANSLATORS
        from edgekit.support import Support, call_targets, histogram, op_name

        targets = list(call_targets(exported.graph_module))
        missing = Counter(name for name in map(op_name, targets)
                          if name not in TRANSLATORS and name not in FOLDED_BEFORE_TRANSLATION)
        return Support("ekr", dict(histogram(targets).most_common()), dict(missing),
                       note="--quant int-only only: every op integer, on edgekit's kernels")

    @classmethod
    def sniff(cls, path: Path) -> None:
        check_file_kind(path, suffix=".ekr", what="an edgekit runtime file", magic=b"EKR\0",
                        offset=0, missing_magic="no EKR header")

    @classmethod
    def describe(cls, path: Path) -> dict[str, Any]:
        from edgekit.intonly.ekr import EkrError, summarize
        from edgekit.kernels.ekr import EkrModel

        cls.sniff(path)
        data = path.read_bytes()
        try:
            summary = summarize(data)
        except EkrError as exc:
            raise ArtifactError(f"not a readable .ekr file ({exc})", path=path,
                                hint="re-export it") from None
        EkrModel.from_bytes(data, str(path)).close()  # the runtime's own full check
        return {"format": "ekr", "file": str(path), **summary,
                "inputs": [{"name": "input", "shape": summary["input_shape"],
                            "dtype": "float32"}],
                "outputs": [{"name": "output", "shape": summary["output_shape"],
                             "dtype": "float32"}]}

