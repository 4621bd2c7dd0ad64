"""What the drift check reads of a served ModelVersion (its training-data profile) comes from the version
parsed once per list (``versions.by_version``): the profile the stored spec names, verified by its sha256,
and nothing from a stored object whose spec does not parse (that version's drift is inconclusive)."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

from _operator_fixtures import mv

from onnxops.controller import drift as drift_loop
from onnxops.profile import Profile
from onnxops.reconcile import versions


def _with_profile(tmp_path: Path, version: int) -> dict[str, Any]:
    body = Profile(task="classification", rows=3, features=[]).to_json().encode()
    path = tmp_path / f"profile-{version}.json"
    path.write_bytes(body)
    obj = mv(version)
    obj["spec"]["profile"] = {"uri": f"file://{path}", "sha256": hashlib.sha256(body).hexdigest()}
    return obj


def test_the_profile_of_a_served_version_is_the_one_its_parsed_spec_names(tmp_path: Path) -> None:
    good, broken = _with_profile(tmp_path, 1), _with_profile(tmp_path, 2)
    broken["spec"]["artifact"]["sha256"] = "not-a-digest"  # stored before the API refused it
    by_v = versions.by_version([good, broken, mv(3)], "iris")
    prof = asyncio.run(drift_loop._profile(by_v[1]))
    assert isinstance(prof, Profile) and prof.rows == 3
    assert asyncio.run(drift_loop._profile(by_v[2])) is None  # its profile is not trusted
    assert asyncio.run(drift_loop._profile(by_v[3])) is None  # none recorded
    assert asyncio.run(drift_loop._profile(None)) is None  # gone


def test_a_profile_whose_digest_differs_is_not_read(tmp_path: Path) -> None:
    obj = _with_profile(tmp_path, 4)
    obj["spec"]["profile"]["sha256"] = "0" * 64
    assert asyncio.run(drift_loop._profile(versions.by_version([obj], "iris")[4])) is None
