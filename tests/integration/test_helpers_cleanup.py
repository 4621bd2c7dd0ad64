"""The process helpers of the integration tests stop their process when its readiness wait fails."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import test_drift_prometheus
import test_drift_prometheus_support
import test_serving_process


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[subprocess.Popen[Any]]]:
    """Every process started during the test; any still running at the end is killed (and fails it)."""
    procs: list[subprocess.Popen[Any]] = []
    real = subprocess.Popen

    def spy(*args: Any, **kwargs: Any) -> subprocess.Popen[Any]:
        p = real(*args, **kwargs)
        procs.append(p)
        return p

    monkeypatch.setattr(subprocess, "Popen", spy)
    yield procs
    leaked = [p for p in procs if p.poll() is None]
    for p in leaked:
        p.kill()
        p.wait(10)
    assert not leaked, "a helper left its process running"


def _never_ready(*args: object, **kwargs: object) -> None:
    raise AssertionError("timed out waiting (simulated)")


def test_prometheus_helper_stops_its_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started: list[subprocess.Popen[Any]]
) -> None:
    monkeypatch.setattr(test_drift_prometheus_support, "wait", _never_ready)
    with pytest.raises(AssertionError, match="simulated"):
        test_drift_prometheus_support.Prometheus(tmp_path, [1], "m")
    assert len(started) == 1 and started[0].poll() is not None


def test_exporter_helper_stops_its_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started: list[subprocess.Popen[Any]]
) -> None:
    monkeypatch.setattr(test_drift_prometheus, "wait", _never_ready)
    with pytest.raises(AssertionError, match="simulated"):
        test_drift_prometheus.Exporter(tmp_path, test_drift_prometheus_support.free_port(), 1)
    assert len(started) == 1 and started[0].poll() is not None


def test_serving_helper_stops_its_process(tmp_path: Path, started: list[subprocess.Popen[Any]]) -> None:
    # A stand-in `onnxops.serving` that writes a line that is not JSON, then hangs.
    pkg = tmp_path / "onnxops" / "serving"
    pkg.mkdir(parents=True)
    (tmp_path / "onnxops" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text(
        "import sys, time\nsys.stderr.write('not json\\n')\nsys.stderr.flush()\ntime.sleep(120)\n"
    )
    env = {"PYTHONPATH": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}
    with pytest.raises(ValueError):
        test_serving_process.Proc(env)
    assert len(started) == 1 and started[0].poll() is not None
    assert started[0].args[0] == sys.executable
