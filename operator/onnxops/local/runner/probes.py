"""Readiness/liveness probes, performed for real against the pod's loopback address.

`httpGet` (success: 200 <= status < 400, like the kubelet) and `tcpSocket`; an `exec` probe is not
emulated (reported as unsupported). `ProbeTracker` is the pure threshold logic.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import aiohttp

Obj = dict[str, Any]


@dataclass(frozen=True)
class ProbeSpec:
    kind: str  # httpGet | tcpSocket
    host: str
    port: int
    path: str = "/"
    scheme: str = "HTTP"
    headers: tuple[tuple[str, str], ...] = ()
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3


class ProbeError(ValueError):
    pass


def resolve_port(port: Any, container: Obj) -> int:
    """A probe/target port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ProbeError(f"port {port!r} is not a named port of container {container.get('name')!r}")


def parse_probe(probe: Obj | None, container: Obj, pod_ip: str) -> ProbeSpec | None:
    if not probe:
        return None
    common = {
        "initial_delay": float(probe.get("initialDelaySeconds", 0)),
        "period": float(probe.get("periodSeconds", 10)),
        "timeout": float(probe.get("timeoutSeconds", 1)),
        "success_threshold": int(probe.get("successThreshold", 1)),
        "failure_threshold": int(probe.get("failureThreshold", 3)),
    }
    if "httpGet" in probe:
        h = probe["httpGet"]
        headers = tuple((x["name"], x["value"]) for x in h.get("httpHeaders") or [])
        return ProbeSpec(
            "httpGet",
            h.get("host") or pod_ip,
            resolve_port(h.get("port"), container),
            h.get("path", "/"),
            h.get("scheme", "HTTP"),
            headers,
            **common,  # type: ignore[arg-type]
        )
    if "tcpSocket" in probe:
        t = probe["tcpSocket"]
        return ProbeSpec(
            "tcpSocket",
            t.get("host") or pod_ip,
            resolve_port(t.get("port"), container),
            **common,  # type: ignore[arg-type]
        )
    raise ProbeError(f"unsupported probe handler {sorted(k for k in probe if not k[0].isupper())}")


async def probe_once(spec: ProbeSpec, session: aiohttp.ClientSession) -> bool:
    try:
        if spec.kind == "tcpSocket":
            _, writer = await asyncio.wait_for(asyncio.open_connection(spec.host, spec.port), spec.timeout)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return True
        url = f"{spec.scheme.lower()}://{spec.host}:{spec.port}{spec.path}"
        async with session.get(
            url,
            headers=dict(spec.headers),
            timeout=aiohttp.ClientTimeout(total=spec.timeout),
            allow_redirects=False,
            ssl=False,
        ) as resp:
            await resp.read()
            return 200 <= resp.status < 400
    except (OSError, TimeoutError, aiohttp.ClientError):
        return False


@dataclass
class ProbeTracker:
    """Consecutive-result thresholds. `ok` starts False for readiness, True for liveness."""

    success_threshold: int
    failure_threshold: int
    ok: bool
    successes: int = 0
    failures: int = 0

    def feed(self, result: bool) -> bool:
        """Record one result; return True when `ok` flipped."""
        if result:
            self.successes, self.failures = self.successes + 1, 0
            if not self.ok and self.successes >= self.success_threshold:
                self.ok = True
                return True
        else:
            self.failures, self.successes = self.failures + 1, 0
            if self.ok and self.failures >= self.failure_threshold:
                self.ok = False
                return True
        return False
