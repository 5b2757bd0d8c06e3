"""The wheel installs exporters/, runtimes/, models/ inside the edgekit namespace only."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_has_no_generic_top_level_packages(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("edgekit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"edgekit"}
    for module in ("edgekit/exporters/onnx.py", "edgekit/runtimes/onnxruntime.py",
                   "edgekit/models/families.py", "edgekit/models/status.json",
                   "edgekit/transforms/fold_batchnorm.py", "edgekit/cli.py",
                   "edgekit/bench/agent.py", "edgekit/report/__init__.py",
                   "edgekit/exporters/tflite.py", "edgekit/runtimes/litert.py"):
        assert module in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "edgekit = edgekit.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
