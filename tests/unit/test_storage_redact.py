"""storage.redact drops userinfo and query strings; storage errors name the URI only redacted."""

from __future__ import annotations

import pytest

from onnxops.storage import StorageError, local_path, redact

SIG = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature=deadbeef0123"


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        (f"https://host.example/a/m.onnx?{SIG}", "https://host.example/a/m.onnx?<redacted>"),
        ("https://user:hunter2@host.example/a/m.onnx", "https://<redacted>@host.example/a/m.onnx"),
        (
            f"https://user:hunter2@host.example/m.onnx?{SIG}",
            "https://<redacted>@host.example/m.onnx?<redacted>",
        ),
        ("https://u:p@w@host.example:8443/m", "https://<redacted>@host.example:8443/m"),
        (f"https://host.example?{SIG}", "https://host.example?<redacted>"),
        ("https://host.example#frag@evil", "https://host.example?<redacted>"),
        (f"https://u:hunter2@host.example?{SIG}", "https://<redacted>@host.example?<redacted>"),
        ("s3://bucket/key/m.onnx", "s3://bucket/key/m.onnx"),
        ("file:///data/m.onnx", "file:///data/m.onnx"),
    ],
)
def test_redact_drops_userinfo_and_query(uri: str, shown: str) -> None:
    assert redact(uri) == shown
    for secret in ("hunter2", "AKIAEXAMPLE", "deadbeef0123"):
        assert secret not in redact(uri)


def test_not_local_error_is_redacted() -> None:
    with pytest.raises(StorageError) as info:
        local_path(f"https://user:hunter2@host.example/m.onnx?{SIG}")
    msg = str(info.value)
    assert "host.example/m.onnx" in msg and "hunter2" not in msg and "deadbeef0123" not in msg
