"""The load-retry and liveness decisions of the server (serving/loading.py, ModelState.liveness)."""

from __future__ import annotations

import pytest

from onnxops.serving.loading import backoff, is_final, is_live
from onnxops.serving.model import ModelState


def test_backoff_doubles_from_the_initial_wait_up_to_the_cap() -> None:
    assert [backoff(n, 1.0, 60.0) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff(3, 0.25, 10.0) == 1.0
    assert backoff(10_000, 0.5, 30.0) == 30.0  # no overflow for a pod that retried for days
    with pytest.raises(ValueError, match="attempt"):
        backoff(0, 1.0, 60.0)


@pytest.mark.parametrize(
    ("reason", "final"),
    [
        ("ArtifactUnavailable", False),
        ("ProfileUnavailable", False),
        ("DigestMismatch", False),  # e.g. a file still being copied: the right bytes may come
        ("ProfileDigestMismatch", False),
        ("LoadFailed", False),
        ("InvalidModel", True),  # verified bytes that ONNX Runtime refuses stay refused
        ("UnsupportedModel", True),
        ("InvalidProfile", True),
        ("ProfileMismatch", True),
    ],
)
def test_which_failures_are_retried(reason: str, final: bool) -> None:
    assert is_final(reason) is final


def test_is_live() -> None:
    assert is_live(False, 100.0, 399.0, 300.0)
    assert is_live(False, 100.0, 400.0, 300.0)
    assert not is_live(False, 100.0, 400.5, 300.0)
    assert is_live(True, 100.0, 10_000.0, 300.0)  # loaded (or finally failed): restarting cannot help
    assert is_live(False, 100.0, 10_000.0, 0.0)  # 0 disables the check


def test_model_state_liveness_names_the_last_failure() -> None:
    state = ModelState(liveness_timeout=60.0)
    assert state.liveness(state.started + 1) == {"live": True}
    state.set_failed("ArtifactUnavailable", "not found: file:///m/model.onnx", final=False)
    assert state.liveness(state.started + 59) == {"live": True}
    doc = state.liveness(state.started + 61)
    assert doc["live"] is False and doc["reason"] == "ArtifactUnavailable"
    assert "not found: file:///m/model.onnx" in doc["message"] and "61s" in doc["message"]
    state.set_failed("InvalidModel", "ONNX Runtime cannot load it", final=True)
    assert state.liveness(state.started + 1000) == {"live": True}
