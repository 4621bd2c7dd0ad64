"""Version numbers of a model (pure): never reused, one per training run, safe across operator processes.

The durable record is an operator-owned ConfigMap per model and namespace (``onnxops-model-<model>``,
``names.version_counter``) with

- ``highest``: the highest version number ever issued for the model. A deleted ModelVersion's number is
  never issued again (an InferenceService pinned to ``version: 20`` never silently gets another model).
- ``run.<trainingjob-uid>``: the number claimed by that training run. The claim and the new ``highest`` are
  written together with the ConfigMap's ``resourceVersion`` as a precondition, so of two operator
  processes racing for one run, or for one number, exactly one write wins (the other gets 409, reads
  again and finds the run's claim, or the new highest); both then create the same ``<model>-v<N>``, and
  a 409 on a ModelVersion labelled with the run's uid is success.

Claims are kept (about 50 bytes each: a ConfigMap's 1 MiB holds some 20,000 runs of one model); removing
one while another process may still be registering that run would reopen the duplicate race.

A future ``Model`` resource can take the record over as its status (same two pieces of data) without
changing the allocation rule in ``claim``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from onnxops.api.v1alpha1.meta import ObjectMeta
from onnxops.builders import labels, names

HIGHEST = "highest"
RUN_PREFIX = "run."
COMPONENT = "version-counter"


@dataclass(frozen=True)
class Claim:
    version: int
    data: dict[str, str] | None  # the ConfigMap data to write first (None: the run's claim is recorded)


def _int(value: Any) -> int:
    try:
        return max(0, int(str(value)))
    except ValueError:
        return 0


def claim(data: dict[str, str] | None, run_uid: str, floor: int, taken: set[int] | None = None) -> Claim:
    """The version for training run ``run_uid``.

    ``floor``: the highest version of the model's existing ModelVersions (a counter created by an upgrade
    starts above them). ``taken``: numbers whose ModelVersion belongs to another run (a recorded claim
    pointing at one of them is replaced by a new number)."""
    data = dict(data or {})
    key = RUN_PREFIX + run_uid
    mine = _int(data.get(key))
    if mine and mine not in (taken or set()):
        return Claim(mine, None)
    n = max(_int(data.get(HIGHEST)), floor, *(taken or {0})) + 1
    return Claim(n, {HIGHEST: str(n), key: str(n)})


def counter_body(namespace: str, model: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": names.version_counter(model),
            "namespace": namespace,
            "labels": {
                labels.MODEL: model,
                labels.MANAGED_BY: labels.MANAGED_BY_VALUE,
                labels.COMPONENT: COMPONENT,
            },
        },
        "data": data,
    }


def owner_uid(mv: ObjectMeta | Mapping[str, Any] | None) -> str | None:
    """The training run a ModelVersion was registered for (its training-job-uid label). ``mv``: its
    metadata, or the stored object (only its metadata is parsed: a version whose spec does not parse still
    says which run it belongs to)."""
    if mv is None:
        return None
    md = mv if isinstance(mv, ObjectMeta) else ObjectMeta.model_validate(mv.get("metadata") or {})
    return md.labels.get(labels.TRAINING_JOB_UID)
