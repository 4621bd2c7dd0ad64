"""``spec.estimator.search``: scikit-learn's search classes over the trainer's Pipeline.

GridSearchCV, RandomizedSearchCV, HalvingGridSearchCV and HalvingRandomSearchCV run as they are, on the
training split, with a seeded (stratified for classifiers) K-fold and ``n_jobs`` = the container's CPUs
(``cpus.available_cpus``: the cgroup limit, not the node). Only ``_run_search`` is wrapped, for the time
budget: the candidates go to scikit-learn's own ``evaluate_candidates`` in batches of ``n_jobs`` (a halving
round is one batch), and once the budget is spent no batch starts; scikit-learn then picks the best of what
was evaluated. Without a budget, or within it, the result is exactly what the search class gives by itself.

The search does not refit: the best parameters go into the estimator spec, and the trainer fits, evaluates
and exports that Pipeline as it does without a search (with the estimator's own threads back).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from onnxops.api.v1alpha1.search import Search
from onnxops.api.v1alpha1.trainingjob import Estimator

from . import boosting, estimators
from .errors import InvalidSpec, TrainingFailed

MAX_GRID = 10_000
DEFAULT_RANDOM_TRIALS = 10
# our metric -> (scikit-learn scorer, sign that turns the scorer's value back into the metric)
_SCORERS: dict[str, tuple[str, float]] = {
    "accuracy": ("accuracy", 1.0),
    "f1_macro": ("f1_macro", 1.0),
    "roc_auc": ("roc_auc", 1.0),
    "log_loss": ("neg_log_loss", -1.0),
    "rmse": ("neg_root_mean_squared_error", -1.0),
    "mae": ("neg_mean_absolute_error", -1.0),
    "r2": ("r2", 1.0),
}
_CLASSIFICATION = ("accuracy", "f1_macro", "roc_auc", "log_loss")


class _Expired(Exception):
    pass


_UNSET: Any = object()


@dataclass
class SearchResult:
    strategy: str
    search_class: str
    metric: str
    best_params: dict[str, Any]
    best_score: float
    trials: list[dict[str, Any]]
    seconds: float
    stopped_early: bool
    cv_folds: int
    n_jobs: int
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """For the termination message and the ModelVersion (small: no per-trial data)."""
        return {
            "strategy": self.strategy,
            "metric": self.metric,
            "bestParams": self.best_params,
            "bestScore": self.best_score,
            "trials": len(self.trials),
            "seconds": round(self.seconds, 3),
            "stoppedEarly": self.stopped_early,
            "cvFolds": self.cv_folds,
        }

    def metadata(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "searchClass": self.search_class,
            "nJobs": self.n_jobs,
            **self.extra,
            "trialResults": self.trials,
        }


def default_metric(task: str) -> str:
    return "accuracy" if task == "classification" else "r2"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _stepped(r: dict[str, Any]) -> list[Any]:
    lo, hi, step = r["min"], r["max"], r["step"]
    n = math.floor((hi - lo) / step + 1e-9) + 1
    if all(_is_int(v) for v in (lo, hi, step)):
        return [lo + k * step for k in range(n)]
    return [float(round(lo + k * step, 12)) for k in range(n)]


def space(search: Search) -> tuple[dict[str, Any], bool]:
    """(scikit-learn parameter space keyed by the estimator's names, whether every entry is a finite list)."""
    from scipy import stats

    out: dict[str, Any] = {}
    finite = True
    for name, v in search.parameters.items():
        if isinstance(v, list):
            out[name] = list(v)
        elif "step" in v:
            out[name] = _stepped(v)
        else:
            finite = False
            if v.get("log"):
                out[name] = stats.loguniform(float(v["min"]), float(v["max"]))
            elif _is_int(v["min"]) and _is_int(v["max"]):
                out[name] = stats.randint(v["min"], v["max"] + 1)
            else:
                out[name] = stats.uniform(float(v["min"]), float(v["max"]) - float(v["min"]))
    return out, finite


def validate(est_spec: Estimator, task: str) -> None:
    """Before any data is read: every name is a parameter of the estimator, every listed value and range end
    passes the estimator's own checks (scikit-learn's), the metric fits the task, the grid fits maxTrials."""
    search = est_spec.search
    assert search is not None
    cls = estimators.estimator_class(est_spec.class_name)
    names = estimators.valid_param_names(cls)
    for p in search.parameters:
        if p not in names:
            raise InvalidSpec(
                f"estimator.search.parameters.{p}: unknown parameter for {est_spec.class_name}; "
                f"valid: {', '.join(sorted(names))}"
            )
    metric = search.metric or default_metric(task)
    if (metric in _CLASSIFICATION) != (task == "classification"):
        raise InvalidSpec(f"estimator.search.metric: {metric} is not a {task} metric")
    base = estimators.make_estimator(est_spec, 0)
    check = getattr(base, "_validate_params", None)
    if callable(check) and hasattr(base, "_parameter_constraints"):
        for p, v in search.parameters.items():
            candidates = list(enumerate(v)) if isinstance(v, list) else [("min", v["min"]), ("max", v["max"])]
            for i, value in candidates:
                try:
                    base.set_params(**{p: value})
                    check()
                except (TypeError, ValueError) as e:
                    where = f"[{i}]" if isinstance(i, int) else f".{i}"
                    raise InvalidSpec(f"estimator.search.parameters.{p}{where}: {e}") from None
    sk_space, finite = space(search)
    if search.strategy in ("grid", "halving") and finite:
        size = math.prod(len(v) for v in sk_space.values())
        if size > MAX_GRID:
            raise InvalidSpec(
                f"estimator.search.parameters: the grid has {size} candidates; at most {MAX_GRID}"
            )
        if search.max_trials is not None and size > search.max_trials:
            raise InvalidSpec(
                f"estimator.search.maxTrials: the grid has {size} candidates, more than "
                f"maxTrials {search.max_trials}; narrow the grid or raise maxTrials"
            )


def _timed(base: type) -> type:
    class Timed(base):  # type: ignore[misc]
        _deadline: float | None = None
        _batch: int = 1
        stopped_early_ = False

        def _run_search(self, evaluate_candidates: Any, *, callback_ctx: Any = _UNSET) -> None:
            started = [False]
            halving = hasattr(self, "factor")

            def timed(candidate_params: Any, cv: Any = None, more_results: Any = None, **kw: Any) -> Any:
                cands = list(candidate_params)
                # scikit-learn 1.9's fit callbacks number a context's subtasks from 0 on each call; with
                # several calls they clash. The trainer registers no callbacks: evaluate without them.
                kw.pop("callback_ctx", None)
                size = len(cands) if halving else max(1, self._batch)
                out = None
                for i in range(0, max(1, len(cands)), size):
                    if started[0] and self._deadline is not None and time.monotonic() >= self._deadline:
                        raise _Expired
                    started[0] = True
                    more = (
                        {k: v[i : i + size] for k, v in more_results.items()}
                        if more_results
                        else more_results
                    )
                    out = evaluate_candidates(cands[i : i + size], cv, more, **kw)
                return out

            try:  # scikit-learn >= 1.9 passes callback_ctx (and halving requires it); older ones do not
                if callback_ctx is _UNSET:
                    super()._run_search(timed)
                else:
                    super()._run_search(timed, callback_ctx=callback_ctx)
            except _Expired:
                self.stopped_early_ = True

    Timed.__name__ = Timed.__qualname__ = base.__name__
    return Timed


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v if v is None or isinstance(v, bool | int | float | str) else repr(v)


def make_search(
    pipeline: Any,
    search: Search,
    *,
    task: str,
    n_classes: int,
    seed: int,
    n_jobs: int,
    deadline: float | None,
) -> Any:
    """The configured scikit-learn search object (not fitted)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    metric = search.metric or default_metric(task)
    scorer = _SCORERS[metric][0]
    if metric == "roc_auc" and n_classes > 2:
        scorer = "roc_auc_ovr"
    cv = (
        StratifiedKFold(search.cv_folds, shuffle=True, random_state=seed)
        if task == "classification"
        else KFold(search.cv_folds, shuffle=True, random_state=seed)
    )
    sk_space, finite = space(search)
    sk_space = {f"model__{k}": v for k, v in sk_space.items()}
    common: dict[str, Any] = {
        "scoring": scorer,
        "cv": cv,
        "n_jobs": n_jobs,
        "refit": False,
        "error_score": np.nan,
    }
    obj: Any
    if search.strategy == "grid":
        from sklearn.model_selection import GridSearchCV

        obj = _timed(GridSearchCV)(pipeline, sk_space, **common)
    elif search.strategy == "random":
        from sklearn.model_selection import RandomizedSearchCV

        obj = _timed(RandomizedSearchCV)(
            pipeline, sk_space, n_iter=search.max_trials or DEFAULT_RANDOM_TRIALS, random_state=seed, **common
        )
    else:
        from sklearn.experimental import enable_halving_search_cv  # noqa: F401
        from sklearn.model_selection import HalvingGridSearchCV, HalvingRandomSearchCV

        if finite:
            obj = _timed(HalvingGridSearchCV)(
                pipeline, sk_space, factor=search.factor, random_state=seed, **common
            )
        else:
            obj = _timed(HalvingRandomSearchCV)(
                pipeline,
                sk_space,
                n_candidates=search.max_trials or "exhaust",
                factor=search.factor,
                random_state=seed,
                **common,
            )
    obj._deadline = deadline
    obj._batch = n_jobs
    return obj


def run_search(
    pipeline: Any,
    search: Search,
    X: np.ndarray,
    y: np.ndarray,
    *,
    task: str,
    seed: int,
    n_jobs: int,
    budget_seconds: float | None = None,
) -> SearchResult:
    """Run the search on (X, y) (the training split). ``budget_seconds`` defaults to timeoutSeconds."""
    budget = search.timeout_seconds if budget_seconds is None else budget_seconds
    t0 = time.monotonic()
    n_classes = len(np.unique(y)) if task == "classification" else 0
    obj = make_search(
        pipeline,
        search,
        task=task,
        n_classes=n_classes,
        seed=seed,
        n_jobs=n_jobs,
        deadline=None if budget is None else t0 + budget,
    )
    metric = search.metric or default_metric(task)
    sign = _SCORERS[metric][1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # per-fold convergence/failed-fit warnings: the trials record them
        try:
            obj.fit(X.astype(np.float64), y)
        except (ValueError, TypeError, MemoryError) as e:
            raise TrainingFailed(
                f"estimator.search ({type(obj).__name__}) failed: {type(e).__name__}: {str(e)[:400]}"
            ) from None
    seconds = time.monotonic() - t0
    res = obj.cv_results_
    n = len(res["params"])
    trials = []
    for i in range(n):
        t: dict[str, Any] = {
            "params": {k.removeprefix("model__"): _jsonable(v) for k, v in res["params"][i].items()},
            "score": _jsonable(sign * float(res["mean_test_score"][i])),
            "scoreStd": _jsonable(float(res["std_test_score"][i])),
            "rank": int(res["rank_test_score"][i]),
            "fitSeconds": round(float(res["mean_fit_time"][i]), 4),
        }
        for k in ("iter", "n_resources"):
            if k in res:
                t[{"iter": "round", "n_resources": "samples"}[k]] = int(res[k][i])
        trials.append(t)
    if not np.isfinite(obj.best_score_):
        raise TrainingFailed(
            f"estimator.search: every candidate failed to fit (e.g. "
            f"{trials[0]['params'] if trials else {}}); see the trainer log"
        )
    best = {k.removeprefix("model__"): _jsonable(v) for k, v in obj.best_params_.items()}
    extra: dict[str, Any] = {}
    if hasattr(obj, "n_iterations_"):
        extra = {"rounds": int(obj.n_iterations_), "factor": search.factor}
    return SearchResult(
        strategy=search.strategy,
        search_class=type(obj).__name__,
        metric=metric,
        best_params=best,
        best_score=float(sign * obj.best_score_),
        trials=trials,
        seconds=seconds,
        stopped_early=bool(obj.stopped_early_),
        cv_folds=search.cv_folds,
        n_jobs=n_jobs,
        extra=extra,
    )


def searching_pipeline(est_spec: Estimator, *, seed: int, categorical: list[int]) -> Any:
    """The Pipeline the search clones: one thread per fit when the estimator has its own threads (xgboost,
    lightgbm) and the spec leaves them alone, since the search runs n_jobs fits at once."""
    pipe = estimators.build_pipeline(est_spec, seed=seed, categorical=categorical)
    if est_spec.class_name in boosting.BOOSTING and "n_jobs" not in (est_spec.params or {}):
        pipe.set_params(model__n_jobs=1)
    return pipe


def best_estimator_spec(est_spec: Estimator, best: dict[str, Any]) -> Estimator:
    """The estimator spec with the best parameters in ``params`` (and no search)."""
    return est_spec.model_copy(update={"params": {**(est_spec.params or {}), **best}, "search": None})
