"""How many CPUs this container may use: the smaller of its CPU affinity and its cgroup CPU limit.

``os.cpu_count()`` is the node's count: a pod limited to 2 CPUs on a 64-core node that starts 64 threads
is throttled by the CFS quota. The limit is cgroup v2 ``cpu.max`` (``<quota> <period>`` or ``max``), or
cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``; a fractional limit rounds up (1.5 CPUs -> 2) and
never goes below 1. Hand-written: Python's ``os.process_cpu_count`` (3.13) reads the affinity only.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def quota_cpus(root: Path = CGROUP_ROOT) -> float | None:
    """The CPU limit in CPUs from the cgroup files under ``root``; None when unlimited or unknown."""
    try:
        quota, _, period = (root / "cpu.max").read_text().strip().partition(" ")
        if quota != "max" and float(period or 100000) > 0:
            return float(quota) / float(period or 100000)
        return None
    except (OSError, ValueError):
        pass
    for v1 in (root / "cpu", root / "cpu,cpuacct", root):
        try:
            q = int((v1 / "cpu.cfs_quota_us").read_text())
            p = int((v1 / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        return q / p if q > 0 and p > 0 else None
    return None


def available_cpus(root: Path = CGROUP_ROOT) -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    q = quota_cpus(root)
    if q is not None:
        n = min(n, max(1, math.ceil(q)))
    return max(1, n)
