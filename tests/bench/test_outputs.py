"""What a device sends back to `edgekit run`: read without pickle, malformed files refused."""

import io

import numpy as np
import pytest

from edgekit.bench.collectors import DeviceError, npy_bytes, read_outputs_npz


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_outputs_come_back_in_order():
    a, b = np.arange(6.0).reshape(2, 3), np.ones((2, 1))
    got = read_outputs_npz(_npz(**{"out.1": b, "out.0": a}), "ssh://x")
    np.testing.assert_array_equal(got[0], a)
    np.testing.assert_array_equal(got[1], b)


@pytest.mark.parametrize("data", [b"", b"PK\x03\x04 truncated", b"\x93NUMPY garbage"])
def test_a_malformed_file_is_a_device_error(data):
    with pytest.raises(DeviceError, match="not a valid .npz"):
        read_outputs_npz(data, "ssh://x")


def test_pickled_or_misnamed_arrays_are_refused():
    with pytest.raises(DeviceError, match="not a valid .npz"):
        read_outputs_npz(_npz(**{"out.0": np.array([{"a": 1}], dtype=object)}), "ssh://x")
    with pytest.raises(DeviceError, match="unexpected arrays"):
        read_outputs_npz(_npz(weights=np.zeros(3)), "ssh://x")


def test_inputs_travel_as_float32_npy():
    x = np.arange(4, dtype=np.float64).reshape(1, 4)
    back = np.load(io.BytesIO(npy_bytes(x)), allow_pickle=False)
    assert back.dtype == np.float32 and back.shape == (1, 4)
