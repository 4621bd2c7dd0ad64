"""handlers.monitors_off: the checks after an InferenceService's reconcile are skipped (no request) only when
none of drift, performance or capture monitoring is on and no CaptureHealthy condition is left to remove."""

from __future__ import annotations

from typing import Any

import pytest

from onnxops.controller.handlers import monitors_off


def isvc(
    spec: dict[str, Any] | None = None, conditions: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {"name": "s", "namespace": "default"},
        "spec": {"model": "m", **(spec or {})},
        "status": {"conditions": conditions or []},
    }


def test_plain_service_has_nothing_to_check() -> None:
    assert monitors_off(isvc())


@pytest.mark.parametrize(
    "spec",
    [
        {"monitoring": {"drift": {"method": "psi"}}},
        {"monitoring": {"performance": {"source": "Live"}}},
        {"logging": {"enabled": True}},
    ],
)
def test_any_monitor_on_runs_the_checks(spec: dict[str, Any]) -> None:
    assert not monitors_off(isvc(spec))


def test_disabled_monitors_are_off() -> None:
    assert monitors_off(
        isvc(
            {
                "monitoring": {"drift": {"enabled": False}, "performance": {"enabled": False}},
                "logging": {"enabled": False},
            }
        )
    )


def test_a_capture_condition_left_over_runs_the_check_that_removes_it() -> None:
    left = [  # as stored (the schema requires lastTransitionTime)
        {
            "type": "CaptureHealthy",
            "status": "True",
            "reason": "Flushing",
            "message": "",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }
    ]
    assert not monitors_off(isvc(conditions=left))
