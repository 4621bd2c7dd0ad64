"""The training run: data -> fit -> evaluate/gates -> ONNX -> parity -> profile -> bundle."""

from __future__ import annotations

import json
import logging
import platform
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from onnxops import __version__, storage
from onnxops.api.v1alpha1.termination import ArtifactRef, DatasetRef, FileRef, TrainerSuccess
from onnxops.api.v1alpha1.trainingjob import TrainingJobSpec

from . import boosting, champion, data, estimators, evaluate, export, fairness, parity, search, slicing
from .cpus import available_cpus
from .errors import AlreadyExists, StorageFailed, TrainingFailed
from .profile import build_profile

log = logging.getLogger("onnxops.trainer")
MODEL_FILE, PROFILE_FILE, METADATA_FILE = "model.onnx", "profile.json", "metadata.json"


@dataclass
class RunArgs:
    spec: TrainingJobSpec
    model: str
    run_id: str
    output_uri: str


class _Clock:
    def __init__(self) -> None:
        self.t0 = self.t = time.perf_counter()

    def lap(self) -> str:
        now = time.perf_counter()
        s, self.t = now - self.t, now
        return f"{s:.2f}s"


def library_versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import pandas
    import skl2onnx
    import sklearn

    return {
        "onnxops": __version__,
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "skl2onnx": skl2onnx.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
        "pandas": pandas.__version__,
    }


def _fit(pipeline: Any, X: np.ndarray, y: np.ndarray, class_name: str) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            pipeline.fit(X, y)
        except (ValueError, TypeError, MemoryError) as e:
            raise TrainingFailed(f"{class_name} fit failed: {type(e).__name__}: {str(e)[:400]}") from None
    return sorted({f"{w.category.__name__}: {str(w.message)[:160]}" for w in caught})


def train(args: RunArgs) -> TrainerSuccess:
    """Run the whole training; returns the termination-message summary. Raises TrainerError subclasses."""
    spec, clock = args.spec, _Clock()
    ev = spec.evaluation or evaluate_default()
    est_spec = spec.estimator
    task = estimators.task_of(est_spec.class_name)
    classification = task == "classification"
    gates = [evaluate.parse_gate(g) for g in ev.gates or []]
    champion_gates = [champion.ChampionGate.from_spec(g) for g in ev.champion_gates or []]
    pipeline = estimators.build_pipeline(est_spec, seed=ev.seed, categorical=[])  # validates params early
    if est_spec.search is not None:
        search.validate(est_spec, task)
    wanted = evaluate.plan_metrics(
        task,
        hasattr(pipeline, "predict_proba"),
        est_spec.class_name,
        ev.metrics,
        [*gates, *(g.as_gate() for g in champion_gates)],
    )
    slice_gates, slice_wanted = (
        slicing.plan(ev.slices, task, hasattr(pipeline, "predict_proba"), est_spec.class_name)
        if ev.slices
        else ([], [])
    )
    fair_gates = fairness.plan(ev.fairness, task) if ev.fairness else []
    log.info(
        "trainer %s: model=%s run=%s estimator=%s task=%s",
        __version__,
        args.model,
        args.run_id,
        est_spec.class_name,
        task,
    )

    table = data.load_table(spec.dataset)
    log.info(
        "loaded %s: %d rows x %d columns, sha256 %s (%s)",
        table.uri,
        len(table.frame),
        table.frame.shape[1],
        table.sha256,
        clock.lap(),
    )
    feats = data.select_features(table, spec.dataset, classification=classification)
    dataset_uri, dataset_sha, n_rows = table.uri, table.sha256, len(feats.y)
    served = {"fromServing": table.lineage} if table.lineage else {}  # dataset.fromServing: what was read
    side_columns = _evaluation_columns(table, ev)  # slice and sensitive columns (features or not)
    del table  # the frame goes before the split's own temporaries arrive (peak memory)
    split = evaluate.split_indices(
        feats.y, test_fraction=ev.test_fraction, seed=ev.seed, classification=classification
    )
    X_train, X_test = feats.take_split(split.train, split.test)
    y_train, y_test = feats.y[split.train], feats.y[split.test]
    log.info(
        "split %d train / %d test rows (seed %d%s); %d features%s",
        len(y_train),
        len(y_test),
        ev.seed,
        ", stratified" if split.stratified else "",
        len(feats.names),
        f", {len(feats.categorical)} one-hot encoded" if feats.categorical else "",
    )

    searched: search.SearchResult | None = None
    if est_spec.search is not None:
        n_jobs = available_cpus()
        log.info(
            "%s search over %s (%d-fold CV, %d jobs)",
            est_spec.search.strategy,
            ", ".join(est_spec.search.parameters),
            est_spec.search.cv_folds,
            n_jobs,
        )
        to_search = search.searching_pipeline(est_spec, seed=ev.seed, categorical=feats.categorical)
        searched = search.run_search(
            to_search, est_spec.search, X_train, y_train, task=task, seed=ev.seed, n_jobs=n_jobs
        )
        log.info(
            "search: %d trials in %.1fs%s; best %s=%.4f with %s",
            len(searched.trials),
            searched.seconds,
            " (time budget spent, stopped early)" if searched.stopped_early else "",
            searched.metric,
            searched.best_score,
            searched.best_params,
        )
        est_spec = search.best_estimator_spec(est_spec, searched.best_params)
    pipeline = estimators.build_pipeline(est_spec, seed=ev.seed, categorical=feats.categorical)
    fit_warnings = _fit(pipeline, X_train, y_train, est_spec.class_name)
    for w in fit_warnings:
        log.info("fit warning: %s", w)
    log.info("fitted %s (%s)", est_spec.class_name, clock.lap())

    classes = [str(c) for c in pipeline.classes_] if classification else None
    X_test64 = X_test.astype(np.float64)
    y_pred = pipeline.predict(X_test64)
    has_proba = classification and hasattr(pipeline, "predict_proba")
    proba = pipeline.predict_proba(X_test64) if has_proba else None
    metrics = evaluate.compute_metrics(
        task, wanted, y_test, y_pred, proba, list(pipeline.classes_) if classification else None
    )
    del X_test64
    log.info("held-out metrics: %s", ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    failures = evaluate.failed_gates(gates, metrics)
    test_columns = {k: v[split.test] for k, v in side_columns.items()}
    slice_results, fair_result, held_out_failures = _slices_and_fairness(
        ev,
        task,
        test_columns,
        y_test,
        y_pred,
        proba,
        list(pipeline.classes_) if classification else None,
        slice_wanted,
        slice_gates,
        fair_gates,
    )
    failures += held_out_failures
    comparison = champion.evaluate_champion(  # champion/challenger: the same held-out rows
        champion_gates,
        champion.from_env() if champion_gates else None,
        metrics,
        X_test=X_test,
        y_test=y_test,
        task=task,
        classes=list(pipeline.classes_) if classification else None,
    )
    champ_json = {"champion": comparison.to_json()} if comparison is not None else {}
    if comparison is not None:
        log.info("%s", comparison.message)
        failures += comparison.failures
    if failures:
        from .errors import GateNotMet

        raise GateNotMet("; ".join(failures), extra={"metrics": metrics, **champ_json})
    if gates:
        log.info("gates met: %s", "; ".join(g.text for g in gates))

    onnx_bytes = export.to_onnx(pipeline, X_train.shape[1], classifier=classification, name=args.model)
    sess = export.session(onnx_bytes)
    test_out = export.run(sess, X_test)
    report = parity.check_parity(pipeline, test_out, X_test, task=task, predicted=y_pred, scores=proba)
    log.info(
        "exported ONNX (%d bytes); parity ok on %d held-out rows, max |diff| %.3g (%s)",
        len(onnx_bytes),
        report.rows,
        report.max_abs_diff,
        clock.lap(),
    )
    sig = export.signature(sess, test_out, feats.names, task=task, class_labels=classes)

    train_pred = export.run(sess, X_train)[0]
    prof = build_profile(task, X_train, feats.names, feats.categorical, train_pred, classes, seed=ev.seed)
    profile_bytes = prof.to_json().encode()
    log.info("profiled %d training rows (%s)", prof.rows, clock.lap())

    base = storage.join_uri(args.output_uri, args.model, args.run_id)
    model_sha, profile_sha = storage.sha256_hex(onnx_bytes), storage.sha256_hex(profile_bytes)
    final_est = pipeline[-1]
    metadata = {
        "formatVersion": 1,
        "model": args.model,
        "runId": args.run_id,
        "createdAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "task": task,
        "metrics": metrics,
        "gates": [g.text for g in gates],
        "estimator": {
            "className": est_spec.class_name,
            "scaling": est_spec.scaling,
            "params": spec.estimator.params or {},
            "effectiveParams": estimators.jsonable_params(final_est),
        },
        **({"search": searched.metadata()} if searched else {}),
        "signature": sig,
        "scores": parity.sklearn_scores(pipeline) if classification else None,
        "categoricalEncoding": {
            "features": [feats.names[i] for i in feats.categorical],
            "encoding": "integer codes in the FP32 input, one-hot inside the model; "
            "unknown codes encode to zeros",
        },
        "split": {
            "testFraction": ev.test_fraction,
            "seed": ev.seed,
            "stratified": split.stratified,
            "trainRows": len(y_train),
            "testRows": len(y_test),
        },
        "parity": report.to_json(),
        "lineage": {
            "dataset": {"uri": dataset_uri, "sha256": dataset_sha, "rows": n_rows, **served},
            "estimator": {"className": est_spec.class_name, "params": est_spec.params or {}},
            "codeVersion": __version__,
        },
        "files": {
            MODEL_FILE: {"sha256": model_sha, "sizeBytes": len(onnx_bytes)},
            PROFILE_FILE: {"sha256": profile_sha, "sizeBytes": len(profile_bytes)},
        },
        "libraries": {
            **library_versions(),
            **(boosting.versions() if est_spec.class_name in boosting.BOOSTING else {}),
        },
        "fitWarnings": fit_warnings,
        **(
            {
                "slices": {
                    "metrics": slice_wanted,
                    "minRows": ev.slices.min_rows,
                    "results": slice_results,
                    "gates": [g.text for g in slice_gates],
                }
            }
            if ev.slices
            else {}
        ),
        **(
            {"fairness": {**(fair_result or {}), "gates": [g.text for g in fair_gates]}}
            if ev.fairness
            else {}
        ),
    }
    metadata_bytes = json.dumps(metadata, indent=1).encode()
    try:
        uris = storage.put_bundle(
            base, {MODEL_FILE: onnx_bytes, PROFILE_FILE: profile_bytes, METADATA_FILE: metadata_bytes}
        )
    except storage.AlreadyExists as e:
        raise AlreadyExists(str(e)) from None
    except storage.StorageError as e:
        raise StorageFailed(f"cannot store the bundle at {base}: {e}") from None
    log.info("stored bundle %s (%s; total %.2fs)", base, clock.lap(), time.perf_counter() - clock.t0)
    return TrainerSuccess(
        artifact=ArtifactRef(uri=uris[MODEL_FILE], sha256=model_sha, size_bytes=len(onnx_bytes)),
        profile=FileRef(uri=uris[PROFILE_FILE], sha256=profile_sha),
        metadata=FileRef(uri=uris[METADATA_FILE], sha256=storage.sha256_hex(metadata_bytes)),
        metrics=metrics,
        signature=sig,
        dataset=DatasetRef(uri=dataset_uri, sha256=dataset_sha, from_serving=served.get("fromServing")),
        code_version=__version__,
        search=searched.summary() if searched else None,
        slices=slicing.for_model_version(slice_results, slice_wanted) if slice_results else None,
        fairness=fair_result or None,
        champion=comparison.to_json() if comparison is not None else None,
    )


def _evaluation_columns(table: data.Table, ev: Any) -> dict[str, np.ndarray]:
    """The columns slices and fairness group by, whole (the split is applied later)."""
    wanted: list[tuple[str, str]] = []
    if ev.slices:
        wanted += [
            (f"evaluation.slices.features[{i}].feature", f.feature) for i, f in enumerate(ev.slices.features)
        ]
    if ev.fairness:
        wanted.append(("evaluation.fairness.sensitiveFeature", ev.fairness.sensitive_feature))
    cols = [str(c) for c in table.frame.columns]
    out: dict[str, np.ndarray] = {}
    for where, name in wanted:
        if name not in cols:
            from .errors import InvalidData

            raise InvalidData(
                f"{where}: column {name!r} not found in {table.uri}; columns: "
                f"{', '.join(cols[:20])}{', ...' if len(cols) > 20 else ''}"
            )
        out[name] = table.frame.iloc[:, cols.index(name)].to_numpy()
    return out


def _slices_and_fairness(
    ev: Any,
    task: str,
    columns: dict[str, np.ndarray],
    y_test: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray | None,
    classes: list[Any] | None,
    wanted: list[str],
    slice_gates: list[slicing.SliceGate],
    fair_gates: list[fairness.FairnessGate],
) -> tuple[list[dict[str, Any]], dict[str, Any] | None, list[str]]:
    """Held-out metrics per slice, fairness metrics, and the messages of their failed gates."""
    results: list[dict[str, Any]] = []
    fair: dict[str, Any] | None = None
    failures: list[str] = []
    if ev.slices:
        results = slicing.slice_metrics(ev.slices, columns, wanted, task, y_test, y_pred, proba, classes)
        overall = evaluate.compute_metrics(task, wanted, y_test, y_pred, proba, classes)
        failures += slicing.failed_gates(slice_gates, results, overall, ev.slices.min_rows)
        log.info("slices: %d groups over %s", len(results), ", ".join(f.feature for f in ev.slices.features))
    if ev.fairness and classes is not None:
        fair = fairness.compute(ev.fairness, columns[ev.fairness.sensitive_feature], y_test, y_pred, classes)
        failures += fairness.failed_gates(fair_gates, fair)
        log.info(
            "fairness on %s: %s",
            ev.fairness.sensitive_feature,
            ", ".join(f"{k}={v:.4f}" for k, v in fair["metrics"].items()),
        )
    return results, fair, failures


def evaluate_default() -> Any:
    from onnxops.api.v1alpha1.trainingjob import Evaluation

    return Evaluation.model_validate({})
