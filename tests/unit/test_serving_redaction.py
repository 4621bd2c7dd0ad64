"""Load errors (log, 503 bodies, the verification termination message) never carry a URI's credentials."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from onnxops.serving import _artifacts
from onnxops.serving._artifacts import ArtifactError, DigestError, read_verified
from onnxops.serving.config import ServerConfig
from onnxops.serving.model import LoadError, load_model

SECRET = "SIGxyz0123456789"
QUERY = f"?X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature={SECRET}"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _clean(message: str) -> None:
    assert SECRET not in message and "AKIAEXAMPLE" not in message and "hunter2" not in message, message


def test_invalid_model_error_drops_the_query_string(tmp_path: Path) -> None:
    # A file whose name holds what would be a pre-signed query on https://: the URI reaches ORT's error.
    data = b"not an onnx model"
    path = tmp_path / f"model.onnx{QUERY}"
    path.write_bytes(data)
    cfg = ServerConfig("m", "1", f"file://{path}", _sha(data))
    with pytest.raises(LoadError) as info:
        load_model(cfg)
    assert info.value.reason == "InvalidModel"
    assert "model.onnx" in info.value.message
    _clean(info.value.message)
    _clean(str(info.value))


def test_invalid_profile_error_drops_the_query_string(tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"x")
    raw = b"{not json"
    profile = tmp_path / f"profile.json{QUERY}"
    profile.write_bytes(raw)
    cfg = ServerConfig(
        "m", "1", f"file://{model}", _sha(b"x"), profile_uri=f"file://{profile}", profile_sha256=_sha(raw)
    )
    with pytest.raises(LoadError) as info:
        load_model(cfg)
    assert info.value.reason == "InvalidProfile"
    assert "profile.json" in info.value.message
    _clean(info.value.message)


URI = f"https://reader:hunter2@bucket.example.invalid/models/m.onnx{QUERY}"


def test_digest_recheck_names_the_uri_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_artifacts, "read_bytes", lambda uri, sha256: b"other bytes")
    with pytest.raises(DigestError) as info:
        read_verified(URI, _sha(b"expected bytes"))
    assert "bucket.example.invalid/models/m.onnx" in str(info.value)
    _clean(str(info.value))


def test_malformed_uri_error_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    def bad(uri: str, sha256: str) -> bytes:
        raise ValueError("malformed")

    monkeypatch.setattr(_artifacts, "read_bytes", bad)
    with pytest.raises(ArtifactError) as info:
        read_verified(URI, _sha(b"x"))
    assert "bucket.example.invalid" in str(info.value)
    _clean(str(info.value))
