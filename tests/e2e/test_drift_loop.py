"""Issue 7's end-to-end drift scenario through the direct-scrape source (no Prometheus: the operator scrapes
the serving pods' /metrics itself, the default when no Prometheus URL is set). test_demo.py runs the same
scenario with a real Prometheus when it is installed.

v1 trained on clean data serves clean traffic for several windows: no action, no false alarm. v2 trained on
a shifted data set goes out as a canary; live traffic looks like v1's world, so v2 drifts from its own
baseline and is rolled back to v1 with the reason and scores in status. Then the live traffic itself
drifts: every version drifts, and the operator retrains."""

from __future__ import annotations

import pytest
from _demo_run import DemoRun, leftovers, run_demo

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
THRESHOLD = 0.2


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    return run_demo(tmp_path_factory.mktemp("drift-loop"), "--no-prometheus")


def test_direct_scrape_closes_the_loop(loop: DemoRun) -> None:
    assert loop.returncode == 0, loop.output[-6000:]
    assert loop.summary["prometheusUrl"] == ""
    evals = loop.summary["driftEvaluations"]

    # no action during the no-drift windows (only v1 served, clean traffic)
    no_drift = [
        e
        for e in evals
        if e["stableVersion"] == 1 and e["canaryVersion"] is None and e["stage"] in ("step2", "step3")
    ]
    conclusive = [e for e in no_drift if e["drift"]["verdict"] != "Inconclusive"]
    assert len(conclusive) >= 3
    assert all(
        e["drift"]["verdict"] != "Drift" and e["rollback"] is None and e["retrain"] is None for e in no_drift
    )
    assert all(e["drift"]["versions"]["1"] < THRESHOLD for e in conclusive)

    # v2 rolled back to v1, with reason and scores
    st = loop.isvc
    rb = st["rollback"]
    assert (rb["from"], rb["to"], rb["reason"]) == (2, 1, "DriftDetected")
    assert rb["scores"]["v2"] > THRESHOLD > rb["scores"]["v1"]
    assert any(e["canaryVersion"] == 2 for e in evals)

    # the traffic drifts: a retrain, and its version is rolled out
    assert st["retrain"]["reason"] == "AllVersionsDrifted"
    tj = loop.tj(st["retrain"]["trainingJob"])
    assert tj["status"]["modelVersion"] == "iris-v3"
    assert st["stableVersion"] == 3


def test_no_process_or_port_is_left(loop: DemoRun) -> None:
    assert leftovers(loop.summary) == ([], [])
