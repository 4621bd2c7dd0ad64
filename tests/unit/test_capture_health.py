"""CaptureHealthy (reconcile/capture_health.py): the decision table, and the pod counters read from the
exposition the server's own capture collector produces."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from onnxops.reconcile import capture_health as ch
from onnxops.serving.capture import Capture
from onnxops.serving.capture_config import CaptureConfig
from onnxops.serving.sink import LocalSink

UP, WROTE = ch.PodCapture("p1", "1", written=120), ch.PodCapture("p2", "2", written=30)
IDLE = ch.PodCapture("p3", "1")  # capturing, nothing written yet
DOWN = ch.PodCapture("p4", "2", written=10, errors=3, dropped=250, sink_up=False)


@pytest.mark.parametrize(
    ("enabled", "pods", "want"),
    [
        (False, [DOWN], None),  # capture off: no condition
        (True, [], None),  # no pod with capture metrics: no evidence
        (True, [IDLE], None),  # nothing written, nothing failed: no evidence yet
        (True, [UP], (True, "SinkWritable", "1 of 1 serving pods wrote 120 captured rows")),
        (True, [UP, WROTE, IDLE], (True, "SinkWritable", "2 of 3 serving pods wrote 150 captured rows")),
        (
            True,
            [UP, DOWN],
            (
                False,
                "SinkUnavailable",
                "1 of 2 serving pods cannot write captured rows to spec.logging.sink: "
                "p4 (v2: 3 failed writes, 250 rows dropped)",
            ),
        ),
        (True, [DOWN, IDLE], (False, "SinkUnavailable", "1 of 2 serving pods cannot write")),
    ],
)
def test_decision_table(enabled: bool, pods: list[ch.PodCapture], want: tuple[bool, str, str] | None) -> None:
    got = ch.decide(enabled, pods)
    if want is None:
        assert got is None
        return
    assert got is not None and got[:2] == want[:2] and got[2].startswith(want[2])
    if not want[0]:
        assert "writable from every serving pod" in got[2] and "requests are answered" in got[2]


def test_many_pods_down_are_named_up_to_five() -> None:
    pods = [ch.PodCapture(f"p{i}", "1", errors=1, sink_up=False) for i in range(8)]
    got = ch.decide(True, pods)
    assert got is not None and "p4 (v1" in got[2] and "p5 (v1" not in got[2] and "and 3 more" in got[2]


@pytest.mark.parametrize(
    ("logging", "want"),
    [
        (None, None),
        ({"enabled": False}, None),
        ({}, 30.0),
        ({"flushInterval": "1s"}, 5.0),
        ({"flushInterval": "15s"}, 15.0),
        ({"flushInterval": "10m"}, 60.0),
    ],
)
def test_check_interval_follows_the_flush_interval(logging: dict | None, want: float | None) -> None:
    spec = {"model": "m"} | ({"logging": logging} if logging is not None else {})
    assert ch.check_interval({"metadata": {"name": "s"}, "spec": spec}) == want


def test_counters_from_the_servers_own_exposition(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The counters and the gauge as the server's capture collector exposes them, read back by the
    operator's parser (a real failing sink: tests/integration/test_operator_capture.py)."""
    cap = Capture(CaptureConfig(sink_uri=tmp_path.as_uri(), pod="p"), "m", "3", LocalSink(tmp_path.as_uri()))
    reg = CollectorRegistry()
    reg.register(cap)
    assert ch.parse_capture("p", "3", "# nothing\n") is None  # a pod without capture
    healthy = ch.parse_capture("p", "3", generate_latest(reg).decode())
    assert healthy == ch.PodCapture("p", "3", 0.0, 0.0, 0.0, True)
    cap.captured = cap.queued_rows = 0
    cap.errors, cap.sink_up, cap.written = 2, False, 5
    cap.dropped["queue_full"] = 7
    got = ch.parse_capture("p", "3", generate_latest(reg).decode())
    assert got == ch.PodCapture("p", "3", written=5, errors=2, dropped=7, sink_up=False)
