import numpy as np
import pytest
from edgekit.runtimes.onnxruntime import OnnxRuntime

from edgekit.artifact import Artifact
from edgekit.errors import InputMismatch


def test_runs_and_checks_inputs(tiny_artifact):
    art = Artifact.open(tiny_artifact)
    sess = OnnxRuntime().load(art.model_path, threads=1)
    inputs, outputs = art.load_golden()
    out = sess.run({"input": inputs["input"][:1]})
    assert out["logits"].shape == (1, 10)
    np.testing.assert_allclose(out["logits"], outputs["logits"][:1], rtol=1e-4, atol=1e-5)
    nhwc = r"expected shape \(1, 3, 32, 32\), given \(1, 32, 32, 3\)"
    with pytest.raises(InputMismatch, match=nhwc):
        sess.run({"input": np.zeros((1, 32, 32, 3), np.float32)})
    with pytest.raises(InputMismatch, match="expected dtype float32"):
        sess.run({"input": np.zeros((1, 3, 32, 32), np.float64)})
    with pytest.raises(InputMismatch, match="missing input"):
        sess.run({"x": np.zeros((1, 3, 32, 32), np.float32)})
    assert OnnxRuntime.available() and OnnxRuntime.version()
