"""Issue 23 §8: a blocked deletion of a served ModelVersion is logged (and posted by kopf) once per change,
not at every 5 s retry."""

from __future__ import annotations

import logging

import pytest

from onnxops.controller.lognoise import RepeatFilter, install


def record(name: str, msg: str, kind: str = "ModelVersion") -> logging.LogRecord:
    r = logging.LogRecord("kopf.objects", logging.ERROR, __file__, 1, msg, None, None)
    r.k8s_ref = {"kind": kind, "namespace": "default", "name": name}  # as kopf's ObjectLogger sets it
    return r


WAITS = "Handler 'model_version_delete' failed temporarily: deletion waits: served by default/gone"


def test_repeats_are_dropped_changes_pass() -> None:
    f = RepeatFilter()
    assert [f.filter(record("gone-v1", WAITS)) for _ in range(5)] == [True, False, False, False, False]
    # the reason changes (another service serves it): logged again
    changed = WAITS + ", default/other"
    assert f.filter(record("gone-v1", changed)) is True and f.filter(record("gone-v1", changed)) is False
    # another object has its own history
    assert f.filter(record("gone-v2", WAITS)) is True
    # other messages are never filtered
    other = "Handler 'reconcile' failed temporarily: boom"
    assert all(f.filter(record("gone-v1", other)) for _ in range(3))
    plain = logging.LogRecord("kopf.objects", logging.ERROR, __file__, 1, WAITS, None, None)
    assert f.filter(plain) and f.filter(plain)


def test_install_once_on_kopfs_object_logger(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("kopf.objects")
    before = list(logger.filters)
    try:
        f = install()
        assert install() is f and sum(isinstance(x, RepeatFilter) for x in logger.filters) == 1
        ref = {"kind": "ModelVersion", "namespace": "d", "name": "m"}
        with caplog.at_level(logging.ERROR, logger="kopf.objects"):
            for _ in range(4):
                logger.error(WAITS, extra={"k8s_ref": ref})
        assert [r.getMessage() for r in caplog.records].count(WAITS) == 1
    finally:
        logger.filters[:] = before
