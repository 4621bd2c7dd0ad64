"""`onnxops drift compare`: JSON contract, verdicts, exit codes; values checked against scipy directly."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from onnxops.drift.cli import main


def _write(path: Path, columns: dict[str, list[object]]) -> Path:
    names = list(columns)
    n = len(columns[names[0]])
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(names)
        for i in range(n):
            w.writerow(["" if columns[c][i] is None else columns[c][i] for c in names])
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, dict[str, list[object]], dict[str, list[object]]]:
    rng = np.random.default_rng(0)
    ref = {
        "x": [round(v, 6) for v in rng.normal(0, 1, 400)],
        "colour": list(rng.choice(["red", "blue", "green"], 400, p=[0.5, 0.3, 0.2])),
    }
    cur_x: list[object] = [round(v, 6) for v in rng.normal(1.0, 1, 200)]
    cur_x[:20] = [None] * 20
    cur = {"x": cur_x, "colour": list(rng.choice(["red", "blue", "violet"], 200, p=[0.2, 0.3, 0.5]))}
    return _write(tmp_path / "ref.csv", ref), _write(tmp_path / "cur.csv", cur), ref, cur


def test_json_contract_and_values_against_scipy(capsys, files) -> None:
    ref_path, cur_path, ref, cur = files
    rc, out, _ = _run(capsys, "compare", "--reference", str(ref_path), "--current", str(cur_path), "--json")
    assert rc == 1
    doc = json.loads(out)
    assert set(doc) == {"features", "drift"} and doc["drift"] is True
    x = doc["features"]["x"]
    assert set(x) == {"psi", "js", "ks_statistic", "ks_pvalue", "wasserstein", "missing_share", "drift"}
    r = np.array(ref["x"], dtype=float)
    c = np.array([v for v in cur["x"] if v is not None], dtype=float)
    ks = sps.ks_2samp(r, c)
    assert x["ks_statistic"] == pytest.approx(ks.statistic, abs=1e-6)
    assert x["ks_pvalue"] == pytest.approx(ks.pvalue, abs=1e-6)
    assert x["wasserstein"] == pytest.approx(sps.wasserstein_distance(r, c) / r.std(), abs=1e-6)
    edges = np.unique(np.quantile(r, [i / 10 for i in range(1, 10)]))
    bounds = list(zip([-np.inf, *edges], [*edges, np.inf], strict=True))
    p = np.array([np.sum((r > lo) & (r <= hi)) for lo, hi in bounds])
    q = np.array([np.sum((c > lo) & (c <= hi)) for lo, hi in bounds])
    assert x["js"] == pytest.approx(jensenshannon(p / p.sum(), q / q.sum()), abs=1e-6)
    ps, qs = p / p.sum(), q / q.sum()
    ps, qs = np.where(ps == 0, 1e-4, ps), np.where(qs == 0, 1e-4, qs)
    assert x["psi"] == pytest.approx(float(np.sum((qs - ps) * np.log(qs / ps))), abs=1e-6)
    assert x["missing_share"] == pytest.approx(0.1)
    assert x["drift"] is True

    col = doc["features"]["colour"]
    assert set(col) == {"psi", "js", "chi2_pvalue", "missing_share", "drift"}
    cats = ["blue", "green", "red", "violet"]
    table = np.array([[ref["colour"].count(k) for k in cats], [cur["colour"].count(k) for k in cats]])
    assert col["chi2_pvalue"] == pytest.approx(sps.chi2_contingency(table).pvalue, abs=1e-6)
    assert col["js"] == pytest.approx(jensenshannon(table[0] / 400, table[1] / 200), abs=1e-6)


def test_no_drift_exit_zero_and_table(capsys, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    ref = _write(tmp_path / "r.csv", {"a": list(rng.normal(0, 1, 2000)), "b": list(rng.integers(0, 3, 2000))})
    cur = _write(tmp_path / "c.csv", {"a": list(rng.normal(0, 1, 2000)), "b": list(rng.integers(0, 3, 2000))})
    rc, out, _ = _run(capsys, "compare", "--reference", str(ref), "--current", str(cur))
    assert rc == 0
    assert "verdict: no drift" in out
    assert out.splitlines()[0].split()[:2] == ["feature", "kind"]


def test_method_selection_omits_other_statistics(capsys, files) -> None:
    ref_path, cur_path, _, _ = files
    rc, out, _ = _run(
        capsys,
        "compare",
        "--reference",
        str(ref_path),
        "--current",
        str(cur_path),
        "--json",
        "--method",
        "ks",
    )
    doc = json.loads(out)
    assert set(doc["features"]["x"]) == {"ks_statistic", "ks_pvalue", "missing_share", "drift"}
    assert set(doc["features"]["colour"]) == {"missing_share", "drift"}  # KS does not apply
    assert doc["features"]["colour"]["drift"] is False
    assert rc == 1


def test_thresholds_change_the_verdict(capsys, files) -> None:
    ref_path, cur_path, _, _ = files
    base = ["compare", "--reference", str(ref_path), "--current", str(cur_path), "--json", "--method", "psi"]
    doc = json.loads(_run(capsys, *base)[1])
    high = max(f["psi"] for f in doc["features"].values()) * 1.01
    rc, out, _ = _run(capsys, *base, "--psi-threshold", str(high))
    assert rc == 0 and json.loads(out)["drift"] is False


def test_bonferroni_across_features(capsys, tmp_path: Path) -> None:
    # one feature with p between alpha/2 and alpha: drifts alone, not with a second (clean) feature
    rng = np.random.default_rng(3)
    for _ in range(200):
        a, b = rng.normal(0, 1, 60), rng.normal(0.45, 1, 60)
        p = sps.ks_2samp(a, b).pvalue
        if 0.025 < p < 0.05:
            break
    else:  # pragma: no cover
        pytest.skip("no sample with a p-value in (0.025, 0.05)")
    same = list(rng.normal(0, 1, 60))
    one_r, one_c = _write(tmp_path / "r1.csv", {"a": list(a)}), _write(tmp_path / "c1.csv", {"a": list(b)})
    two_r = _write(tmp_path / "r2.csv", {"a": list(a), "z": same})
    two_c = _write(tmp_path / "c2.csv", {"a": list(b), "z": same})
    ks = ["--method", "ks"]
    assert _run(capsys, "compare", "--reference", str(one_r), "--current", str(one_c), *ks)[0] == 1
    assert _run(capsys, "compare", "--reference", str(two_r), "--current", str(two_c), *ks)[0] == 0


@pytest.mark.parametrize(
    "argv,needle",
    [
        ([], "subcommand"),
        (["compare", "--reference", "nope.csv"], "--current"),
        (["compare", "--reference", "{r}", "--current", "{missing}"], "cannot read"),
        (["compare", "--reference", "{r}", "--current", "{c}", "--method", "bogus"], "invalid choice"),
        (["compare", "--reference", "{r}", "--current", "{c}", "--psi-threshold", "-1"], "psi threshold"),
        (["compare", "--reference", "{r}", "--current", "{c}", "--ks-alpha", "1.5"], "ks_alpha"),
        (["compare", "--reference", "{r}", "--current", "{other}"], "missing from the current"),
        (["compare", "--reference", "{r}", "--current", "{ragged}"], "fields"),
    ],
)
def test_usage_errors_exit_two(capsys, tmp_path: Path, argv: list[str], needle: str) -> None:
    r = _write(tmp_path / "r.csv", {"a": [1, 2, 3]})
    c = _write(tmp_path / "c.csv", {"a": [1, 2, 4]})
    other = _write(tmp_path / "o.csv", {"b": [1, 2, 4]})
    ragged = tmp_path / "g.csv"
    ragged.write_text("a\n1\n2,3\n")
    paths = {"r": r, "c": c, "other": other, "ragged": ragged, "missing": tmp_path / "missing.csv"}
    rc, _, err = _run(capsys, *[a.format(**paths) for a in argv])
    assert rc == 2
    assert needle in err


def test_empty_current_column_is_reported_not_crashing(capsys, tmp_path: Path) -> None:
    r = _write(tmp_path / "r.csv", {"a": [1.0, 2.0, 3.0], "k": ["x", "y", "x"]})
    c = _write(tmp_path / "c.csv", {"a": [None, None, None], "k": ["x", "y", "z"]})
    rc, out, _ = _run(capsys, "compare", "--reference", str(r), "--current", str(c), "--json")
    doc = json.loads(out)
    assert doc["features"]["a"] == {"missing_share": 1.0, "drift": False}
    assert math.isfinite(doc["features"]["k"]["psi"])
    assert rc in (0, 1)


def test_through_the_onnxops_command(tmp_path: Path) -> None:
    import subprocess
    import sys

    r = _write(tmp_path / "r.csv", {"a": list(range(50)), "k": ["x", "y"] * 25})
    c = _write(tmp_path / "c.csv", {"a": [v + 100 for v in range(50)], "k": ["x", "y"] * 25})
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "onnxops",
            "drift",
            "compare",
            "--reference",
            str(r),
            "--current",
            str(c),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 1, res.stderr
    doc = json.loads(res.stdout)
    assert doc["features"]["a"]["drift"] is True and doc["features"]["k"]["drift"] is False
    res = subprocess.run(
        [sys.executable, "-m", "onnxops", "drift", "compare", "--reference", str(r)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2 and "--current" in res.stderr
