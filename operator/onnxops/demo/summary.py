"""The demo's ending: a summary table for people and a JSON document (``--json-summary``) with the final
objects' status, the drift evaluations seen while it ran, the step timings and the processes it started."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from onnxops.demo.observe import Observer


def _mv_json(mv: dict[str, Any]) -> dict[str, Any]:
    spec = mv.get("spec") or {}
    return {
        "name": mv["metadata"]["name"],
        "labels": mv["metadata"].get("labels") or {},
        "spec": {k: spec.get(k) for k in ("model", "version", "metrics", "lineage")},
        "status": mv.get("status") or {},
    }


def _tj_json(tj: dict[str, Any]) -> dict[str, Any]:
    spec = tj.get("spec") or {}
    return {
        "name": tj["metadata"]["name"],
        "labels": tj["metadata"].get("labels") or {},
        "spec": {"dataset": spec.get("dataset"), "estimator": spec.get("estimator")},
        "status": tj.get("status") or {},
    }


def objects(obs: Observer) -> dict[str, Any]:
    isvc = obs.isvc or {}
    return {
        "inferenceServices": [
            {
                "name": isvc.get("metadata", {}).get("name"),
                "spec": isvc.get("spec"),
                "status": isvc.get("status") or {},
            }
        ]
        if isvc
        else [],
        "modelVersions": [_mv_json(m) for _, m in sorted(obs.mvs.items(), key=lambda kv: _version(kv[1]))],
        "trainingJobs": [_tj_json(t) for _, t in sorted(obs.tjs.items())],
    }


def _version(mv: dict[str, Any]) -> int:
    return int((mv.get("spec") or {}).get("version") or 0)


def last_scores(evaluations: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """version -> (last score, highest score) over every evaluation seen."""
    out: dict[str, tuple[float, float]] = {}
    for e in evaluations:
        for v, s in ((e.get("drift") or {}).get("versions") or {}).items():
            prev = out.get(str(v))
            out[str(v)] = (float(s), max(float(s), prev[1] if prev else float(s)))
    return out


def last_live(evaluations: list[dict[str, Any]]) -> dict[str, tuple[float, int]]:
    """version -> (its last live metric value, labels) over every performance evaluation seen."""
    out: dict[str, tuple[float, int]] = {}
    for e in evaluations:
        for v, per in ((e.get("performance") or {}).get("versions") or {}).items():
            if per.get("value") is not None:
                out[str(v)] = (float(per["value"]), int(per.get("labels") or 0))
    return out


def decisions(status: dict[str, Any]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for h in status.get("history") or []:
        out.setdefault(int(h.get("version", 0)), []).append(h.get("action", "?"))
    return out


def data_set(ds: dict[str, Any]) -> str:
    """The data set column: a URI, or served traffic with its row counts (lineage.dataset.fromServing)."""
    fs = ds.get("fromServing")
    if not fs:
        return str(ds.get("uri", "?"))
    return (
        f"served traffic of {fs.get('service')}: {fs.get('rowsCaptured')} captured, "
        f"{fs.get('rowsLabelled')} labelled, {fs.get('rowsUsed')} used"
    )


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [line.format(*headers), line.format(*("-" * w for w in widths))]
    out += [line.format(*[str(c) for c in r]) for r in rows]
    return "\n".join(out)


def render(doc: dict[str, Any]) -> str:
    objs = doc.get("objects") or {}
    isvc = (objs.get("inferenceServices") or [{}])[0] if objs.get("inferenceServices") else {}
    st = isvc.get("status") or {}
    scores = last_scores(doc.get("driftEvaluations") or [])
    acts = decisions(st)
    live = last_live(doc.get("performanceEvaluations") or [])
    rows = []
    for mv in objs.get("modelVersions") or []:
        v = int(mv["spec"].get("version") or 0)
        lineage = mv["spec"].get("lineage") or {}
        metrics = mv["spec"].get("metrics") or {}
        acc = metrics.get("accuracy")
        last, high = scores.get(str(v), (None, None))
        role = (
            "stable"
            if st.get("stableVersion") == v
            else "canary"
            if st.get("canaryVersion") == v
            else "rejected"
            if (mv.get("status") or {}).get("rejected")
            else "-"
        )
        row = [
            f"v{v}",
            data_set(lineage.get("dataset") or {}),
            (lineage.get("estimator") or {}).get("className", "?"),
            "-" if acc is None else f"{acc:.3f}",
            "-" if last is None else f"{last:.3f}",
            "-" if high is None else f"{high:.3f}",
            " -> ".join(acts.get(v, [])) or "-",
            role,
        ]
        if live:
            value, n = live.get(str(v), (None, 0))
            row.insert(4, "-" if value is None else f"{value:.3f} ({n} labels)")
        rows.append(row)
    headers = ["version", "data set", "estimator", "accuracy", "last PSI", "max PSI", "decisions", "now"]
    if live:
        headers.insert(4, "live accuracy")
    parts = ["", "== summary", table(rows, headers)]
    rb, rt = st.get("rollback") or {}, st.get("retrain") or {}
    if rb:
        parts.append(
            f"\nrollback: v{rb.get('from')} -> v{rb.get('to')} ({rb.get('reason')}), "
            f"scores {rb.get('scores')}"
        )
    if rt:
        parts.append(
            f"retrain:  TrainingJob {rt.get('trainingJob')} ({rt.get('reason')}), scores {rt.get('scores')}"
        )
    steps = doc.get("steps") or []
    parts.append(
        "\n"
        + table(
            [
                [
                    s["step"],
                    s["title"],
                    "ok" if s["ok"] else "FAILED",
                    "-" if s["seconds"] is None else f"{s['seconds']:.1f}s",
                ]
                for s in steps
            ],
            ["step", "what", "result", "time"],
        )
    )
    det = doc.get("detection") or {}
    if doc.get("scenario") == "concept-drift":
        la = doc.get("liveAccuracy") or {}
        parts.append(
            f"\nconcept drift: retrain created {det.get('retrainSeconds')}s after the labels changed "
            f"(data drift then: {doc.get('dataDriftAtRetrain')}); live accuracy v1 "
            f"{_f(la.get('v1BeforeChange'))} before the change, {_f(la.get('v1AfterChange'))} after; "
            f"v2 {_f(la.get('v2AfterChange'))}"
        )
    else:
        parts.append(
            f"\ndrift detection: v2 rolled back {det.get('rollbackSeconds')}s after its first pod joined "
            f"the Service; retrain created {det.get('retrainSeconds')}s after the traffic shifted"
        )
    tr = doc.get("traffic") or {}
    parts.append(
        f"traffic: {tr.get('requests')} requests, {tr.get('rows')} rows, {tr.get('errors')} errors, "
        f"p99 {tr.get('p99Ms')} ms; total {doc.get('durationSeconds')}s"
    )
    return "\n".join(parts)


def _f(x: Any) -> str:
    return "-" if x is None else f"{float(x):.3f}"


def write_json(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True, default=str))
    tmp.replace(path)
