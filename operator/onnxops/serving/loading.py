"""When to load the model again and when the server stops being live: small pure decisions.

A load that failed because the artifact (or profile) could not be read, or because the bytes read did not
match the expected sha256, is retried with a capped exponential backoff: a volume mounted late, an object
store that was down, a file still being copied all heal without a restart. The digest is checked on every
attempt, on the very bytes that get loaded, so a retry can never serve anything but the verified bytes.
A failure of verified bytes (ONNX Runtime refuses them, the profile does not fit the model) is final: the
same URI and sha256 can only give the same bytes, so neither a retry nor a restart helps; the server stays
live and not ready, with the reason in /v2/health/ready.

Liveness: once a model has loaded (or a final failure is known) the server is live. While it is still
loading or retrying, it is live for ``liveness_timeout`` seconds after start, then /v2/health/live answers
503 so that the kubelet restarts the container (0 disables this).
"""

from __future__ import annotations

# reasons (ModelState.reason) of failures that no retry can fix for the same URI + sha256
FINAL_REASONS = frozenset({"InvalidModel", "UnsupportedModel", "InvalidProfile", "ProfileMismatch"})


def is_final(reason: str) -> bool:
    return reason in FINAL_REASONS


def backoff(attempt: int, initial: float, cap: float) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1, 2, ...): initial * 2^(attempt-1), capped."""
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    return float(min(cap, initial * 2 ** min(attempt - 1, 64)))


def is_live(settled: bool, started: float, now: float, timeout: float) -> bool:
    """Live unless the model is still not settled (loaded or finally failed) ``timeout`` s after start."""
    return settled or timeout <= 0 or now - started <= timeout
