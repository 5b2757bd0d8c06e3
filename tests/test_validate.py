import math

import numpy as np

from edgekit.validate import compare


def _ref(n=4, k=10, seed=0):
    return {"logits": np.random.default_rng(seed).standard_normal((n, k)).astype(np.float32)}


def test_identical_outputs_validate():
    ref = _ref()
    r = compare(ref, {"logits": ref["logits"].copy()}, quant="fp32", runtime="rt")
    assert r.validated and r.max_abs == 0 and r.top1_agreement == 1.0
    assert abs(r.cosine - 1.0) < 1e-12
    assert r.n_inputs == 4


def test_small_noise_passes_fp32_but_large_fails():
    ref = _ref()
    rng = np.random.default_rng(1)
    small = ref["logits"] + 1e-6 * rng.standard_normal(ref["logits"].shape)
    assert compare(ref, {"logits": small}, quant="fp32", runtime="rt").validated
    big = ref["logits"] + 0.5 * rng.standard_normal(ref["logits"].shape)
    r = compare(ref, {"logits": big}, quant="fp32", runtime="rt")
    assert not r.validated and "cosine" in r.reason
    assert 0 < r.sqnr_db < 60


def test_top1_flip_fails_fp32():
    ref = {"logits": np.array([[1.0, 0.999999], [0.0, 1.0]], np.float32)}
    got = {"logits": np.array([[0.999999, 1.0], [0.0, 1.0]], np.float32)}
    r = compare(ref, got, quant="fp32", runtime="rt")
    assert r.top1_agreement == 0.5 and not r.validated


def test_nan_never_validates():
    ref = _ref()
    got = ref["logits"].copy()
    got[1, 3] = np.nan
    r = compare(ref, {"logits": got}, quant="fp32", runtime="rt")
    assert not r.validated and "NaN" in r.reason and math.isnan(r.cosine)


def test_shape_mismatch_and_missing_output_fail():
    ref = _ref()
    assert not compare(ref, {"logits": ref["logits"][:2]}, quant="fp32", runtime="rt").validated
    assert not compare(ref, {}, quant="fp32", runtime="rt").validated


def test_near_ties_are_not_judged_but_decisive_flips_fail():
    # 1000 Gaussian logits: row 0 leads by 3 spreads (decisive), row 1 by 0.01 (a near-tie).
    rng = np.random.default_rng(3)
    ref = rng.standard_normal((2, 1000))
    ref[0, 7] = ref[0].max() + 3.0
    ref[1, 9] = ref[1].max() + 0.01
    got = ref.copy()
    got[1, 9] -= 0.05  # flips the near-tie only: cosine stays ~1
    r = compare({"logits": ref}, {"logits": got}, quant="int8", runtime="rt")
    assert r.validated and r.top1_agreement == 1.0 and r.top1_judged == 1
    got[0, 7] -= 6.0  # now the decisive sample flips too
    r = compare({"logits": ref}, {"logits": got}, quant="int8", runtime="rt")
    assert not r.validated and r.top1_agreement == 0.0 and "decisive" in r.reason


def test_all_near_ties_leave_top1_unjudged_and_cosine_decides():
    ref = np.array([[1.0, 1.0 + 1e-4, 0.0, -1.0]])
    got = np.array([[1.0 + 1e-4, 1.0, 0.0, -1.0]])
    r = compare({"logits": ref}, {"logits": got}, quant="int8", runtime="rt")
    assert math.isnan(r.top1_agreement) and r.top1_judged == 0 and r.validated
    assert not compare({"logits": ref}, {"logits": -got}, quant="int8", runtime="rt").validated


KINDS = ("photo",) * 6 + ("noise",) * 2


def _bad_on_noise(quant_noise: float = 0.6):
    """int8-like output: right on the six photos, far off on the two noise inputs."""
    ref = _ref(n=8, k=10, seed=3)
    got = ref["logits"].copy()
    got[6:] += quant_noise * np.abs(got[6:]).max() * np.random.default_rng(4).standard_normal(
        got[6:].shape)
    return ref, {"logits": got}


def test_calibrated_modes_are_judged_on_the_in_distribution_inputs_and_report_the_noise():
    ref, got = _bad_on_noise()
    r = compare(ref, got, quant="int8", runtime="rt", kinds=KINDS)
    assert r.validated is True and r.judged_inputs == 6 and r.n_inputs == 8
    assert r.cosine > 0.9999 and r.cosine_noise is not None and r.cosine_noise < 0.9
    # without kinds (an artifact from before they were recorded) every input is judged
    old = compare(ref, got, quant="int8", runtime="rt")
    assert old.validated is False and old.cosine_noise is None and old.judged_inputs is None
    # fp32 has no calibrated range to clip: the noise inputs are judged
    assert compare(ref, got, quant="fp32", runtime="rt", kinds=KINDS).validated is False


def test_wrong_photos_still_fail_int8_and_say_on_which_inputs():
    ref, got = _bad_on_noise()
    got["logits"][0] = -got["logits"][0]
    r = compare(ref, got, quant="int8", runtime="rt", kinds=KINDS)
    assert r.validated is False and "6 in-distribution inputs" in r.reason


def test_kinds_that_do_not_match_the_inputs_judge_everything():
    ref, got = _bad_on_noise()
    assert compare(ref, got, quant="int8", runtime="rt", kinds=KINDS[:7]).validated is False
    all_noise = ("noise",) * 8
    assert compare(ref, got, quant="int8", runtime="rt", kinds=all_noise).validated is False


def test_several_outputs_count_each_input_once():
    ref, got = _bad_on_noise()
    r = compare({"a": ref["logits"], "b": ref["logits"] * 2}, {"a": got["logits"],
                "b": got["logits"] * 2}, quant="int8", runtime="rt", kinds=KINDS)
    assert r.validated is True and r.judged_inputs == 6 and r.cosine_noise < 0.9
