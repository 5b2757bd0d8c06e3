import os
import signal
import time

import pytest

from edgekit.errors import ArtifactError, RuntimeCrash
from edgekit.isolation import run_isolated


def _add(a, b):
    return a + b


def _segfault():
    os.kill(os.getpid(), signal.SIGSEGV)


def _hang():
    time.sleep(60)


def _user_error():
    raise ArtifactError("bad file", path="/x")


def _bug():
    raise ZeroDivisionError("oops")


def test_result_comes_back():
    assert run_isolated(_add, 2, 3, what="adding") == 5


def test_native_crash_is_reported_and_parent_survives():
    with pytest.raises(RuntimeCrash, match="SIGSEGV"):
        run_isolated(_segfault, what="loading model", path="m.onnx")


def test_hang_is_killed_by_timeout():
    start = time.monotonic()
    with pytest.raises(RuntimeCrash, match="did not finish"):
        run_isolated(_hang, what="loading model", timeout=3)
    assert time.monotonic() - start < 30


def test_edgekit_errors_pass_through_and_bugs_are_wrapped():
    with pytest.raises(ArtifactError, match="bad file"):
        run_isolated(_user_error, what="x")
    with pytest.raises(RuntimeCrash, match="ZeroDivisionError"):
        run_isolated(_bug, what="x")
