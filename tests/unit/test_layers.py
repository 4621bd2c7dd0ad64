"""The layers of docs/architecture.md: the pure decision code loads no Kubernetes I/O, and the helpers that
moved to onnxops.objects are the same objects under their old names (kube/ raises NameConflict, reconcile/
recognises it)."""

from __future__ import annotations

import subprocess
import sys

import onnxops.kube.apply as apply
import onnxops.kube.events as events
import onnxops.kube.fields as kube_fields
import onnxops.objects.compare as compare
import onnxops.objects.fields as fields
import onnxops.objects.ownership as ownership
import onnxops.objects.text as text
import onnxops.reconcile.errors as errors
import onnxops.reconcile.status as status
import onnxops.reconcile.termination as termination


def test_reconcile_loads_no_kube_io_kopf_or_http_client():
    code = (
        "import sys, onnxops.reconcile.trainingjob, onnxops.reconcile.inferenceservice, "
        "onnxops.reconcile.modelversion, onnxops.reconcile.drift_hook\n"
        "print(sorted(m for m in ('aiohttp', 'kopf', 'kubernetes', 'onnxops.kube') if m in sys.modules))"
    )
    cmd = [sys.executable, "-c", code]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_moved_helpers_keep_their_old_names():
    assert apply.contains is compare.contains
    assert status.merge_diff is compare.merge_diff
    assert errors.NameConflict is ownership.NameConflict
    assert errors.owner_uids is ownership.owner_uids
    assert errors.owned_by is ownership.owned_by
    assert termination.short is text.short and termination.scrub is text.scrub
    assert kube_fields.foreign_additions is fields.foreign_additions and kube_fields.MISSING is fields.MISSING


def test_a_name_conflict_raised_by_kube_is_reported_as_name_conflict():
    exc = ownership.NameConflict("Service", "ns", "svc")
    reason, message = errors.describe_error(exc)
    assert reason == errors.NAME_CONFLICT
    assert "Service ns/svc already exists" in message


def test_events_scrub_credentials_with_the_shared_helper():
    assert events.scrub("failed: AWS_SECRET_ACCESS_KEY=abc123 at https://u:p@host/x") == (
        "failed: AWS_SECRET_ACCESS_KEY=<redacted> at https://<redacted>@host/x"
    )
