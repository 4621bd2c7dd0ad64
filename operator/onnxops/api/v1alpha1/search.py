"""TrainingJob ``spec.estimator.search``: hyperparameter search with scikit-learn's search classes.

``parameters`` maps an estimator parameter to its candidates, in one of three forms:

- a list: the values themselves (``max_depth: [3, 5, 7]``, ``criterion: [gini, entropy]``);
- a range ``{min, max, step}``: integers when all three are integers, else floats; ``grid`` and the
  halving grid take ``min, min+step, ... <= max``; ``random`` draws uniformly (integers inclusive of
  ``max``; without ``step`` a float range is continuous);
- log-uniform ``{min, max, log: true}`` (``min > 0``; ``scipy.stats.loguniform``): random and halving only.

The map is free-form in the CRD (values of any JSON type), so the rules the API server can check are CEL on
it; the rest is checked by this model (``onnxops validate``, and the trainer, which fails with
``InvalidSpec`` naming the field).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import ConfigDict, Field, JsonValue, model_validator

from .common import KubeModel

MAX_PARAMETERS = 16
MAX_VALUES = 64
MAX_TRIALS = 1000
SearchStrategy = Literal["grid", "random", "halving"]
_RANGE_KEYS = frozenset({"min", "max", "step", "log"})

PARAMETER_RULES: list[JsonValue] = [
    {
        "rule": "size(self) > 0",
        "message": "estimator.search.parameters: name at least one parameter to search",
    },
    {
        "rule": "self.all(k, type(self[k]) != list || size(self[k]) > 0)",
        "message": "estimator.search.parameters: every list of values needs at least one value",
    },
    {
        "rule": f"self.all(k, type(self[k]) != list || size(self[k]) <= {MAX_VALUES})",
        "message": f"estimator.search.parameters: at most {MAX_VALUES} values per parameter",
    },
    {
        "rule": "self.all(k, type(self[k]) == list || (type(self[k]) == map && has(self[k].min)"
        " && has(self[k].max)))",
        "message": "estimator.search.parameters: each parameter is a list of values or a range {min, max}",
    },
    {
        "rule": "self.all(k, type(self[k]) != map || !has(self[k].min) || !has(self[k].max)"
        " || self[k].min <= self[k].max)",
        "message": "estimator.search.parameters: a range needs min <= max",
    },
    {
        "rule": "self.all(k, type(self[k]) != map || !has(self[k].step) || self[k].step > 0)",
        "message": "estimator.search.parameters: a range's step must be > 0",
    },
    {
        "rule": "self.all(k, type(self[k]) != map || !has(self[k].log) || !self[k].log || self[k].min > 0)",
        "message": "estimator.search.parameters: a log-uniform range needs min > 0",
    },
]
SEARCH_RULES: list[JsonValue] = [
    {
        "rule": "self.strategy != 'grid' || self.parameters.all(k, type(self.parameters[k]) == list"
        " || (type(self.parameters[k]) == map && has(self.parameters[k].step)"
        " && !(has(self.parameters[k].log) && self.parameters[k].log)))",
        "message": "estimator.search: a grid search needs lists or ranges with a step (no continuous or "
        "log-uniform ranges; use strategy random or halving for those)",
        "fieldPath": ".parameters",
    },
]


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def check_parameter(name: str, value: Any) -> str | None:
    """What is wrong with one entry of ``parameters`` (None when it is fine)."""
    where = f"estimator.search.parameters.{name}"
    if isinstance(value, list):
        return _check_values(where, value)
    if not isinstance(value, dict):
        return f"{where}: a list of values or a range {{min, max[, step][, log]}}, not {type(value).__name__}"
    return _check_range(where, value)


def _check_values(where: str, value: list[Any]) -> str | None:
    """A list of candidate values: 1..MAX_VALUES scalars."""
    if not value:
        return f"{where}: the list of values is empty"
    if len(value) > MAX_VALUES:
        return f"{where}: {len(value)} values; at most {MAX_VALUES}"
    for i, v in enumerate(value):
        scalar = v is None or isinstance(v, bool | int | float | str)
        if not scalar or (isinstance(v, str) and len(v) > 64):
            return f"{where}[{i}]: values are numbers, strings (up to 64 characters), booleans or null"
    return None


def _check_range(where: str, value: dict[str, Any]) -> str | None:
    """A range {min, max[, step][, log]}."""
    unknown = sorted(set(value) - _RANGE_KEYS)
    if unknown:
        return f"{where}.{unknown[0]}: unknown key; a range has min, max, step, log"
    for key in ("min", "max"):
        if key not in value:
            return f"{where}.{key}: required in a range"
        if not _is_number(value[key]):
            return f"{where}.{key}: must be a number"
    lo, hi = value["min"], value["max"]
    if lo > hi:
        return f"{where}: min {lo} > max {hi}"
    if "step" in value and (not _is_number(value["step"]) or value["step"] <= 0):
        return f"{where}.step: must be a number > 0"
    if "log" in value and not isinstance(value["log"], bool):
        return f"{where}.log: must be true or false"
    if value.get("log") and lo <= 0:
        return f"{where}.min: a log-uniform range needs min > 0"
    if value.get("log") and "step" in value:
        return f"{where}: a log-uniform range takes no step"
    return None


class Search(KubeModel):
    """Hyperparameter search: the best candidate by cross-validation on the training split is what gets
    trained on the whole training split, evaluated, exported and registered."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": SEARCH_RULES})

    strategy: SearchStrategy = Field(
        "random",
        description="grid (GridSearchCV: every combination), random (RandomizedSearchCV: maxTrials draws) or "
        "halving (successive halving: HalvingGridSearchCV when every parameter is a list or stepped range, "
        "else HalvingRandomSearchCV with maxTrials candidates).",
    )
    parameters: dict[str, Any] = Field(
        description="Estimator parameter -> candidates: a list of values, a range {min, max, step} "
        "(integers when all are integers), or a log-uniform range {min, max, log: true}. Overrides the same "
        "parameter in estimator.params.",
        min_length=1,
        max_length=MAX_PARAMETERS,
        json_schema_extra={
            "x-kubernetes-preserve-unknown-fields": True,
            "x-kubernetes-validations": PARAMETER_RULES,
        },
    )
    max_trials: int | None = Field(
        None,
        ge=1,
        le=MAX_TRIALS,
        description="Trial budget: random draws this many candidates (default 10), halving starts with this "
        "many when it samples; a grid larger than this is refused (default: no bound for a grid).",
    )
    timeout_seconds: int | None = Field(
        None,
        ge=1,
        description="Time budget of the search. Checked between batches of candidates (one batch = as many "
        "candidates as the pod has CPUs; a halving round is one batch): when it is spent, no new batch "
        "starts and the best candidate evaluated so far wins (status and metadata say stoppedEarly). The "
        "final refit is not counted; keep it well below activeDeadlineSeconds.",
    )
    cv_folds: int = Field(5, ge=2, le=20, description="Cross-validation folds (stratified for classifiers).")
    metric: Literal["accuracy", "f1_macro", "roc_auc", "log_loss", "rmse", "mae", "r2"] | None = Field(
        None,
        description="Objective, a metric of the estimator's task; default: accuracy for classifiers, "
        "r2 for regressors. Lower is better for log_loss, rmse and mae (the search minimises them).",
    )
    factor: int = Field(3, ge=2, le=10, description="Halving: the candidates kept each round are 1/factor.")

    @model_validator(mode="after")
    def _check(self) -> Search:
        for name, value in self.parameters.items():
            problem = check_parameter(name, value)
            if problem:
                raise ValueError(problem)
            continuous = isinstance(value, dict) and ("step" not in value or value.get("log"))
            if self.strategy == "grid" and continuous:
                raise ValueError(
                    f"estimator.search.parameters.{name}: a grid search needs a list or a range "
                    "with a step; use strategy random or halving for continuous or log-uniform"
                )
        return self


class SearchSummary(KubeModel):
    """The search that chose a version's parameters (every trial is in the bundle's metadata.json)."""

    strategy: SearchStrategy = Field(description="grid, random or halving.")
    metric: str = Field(
        description="Objective metric (cross-validated on the training split).", max_length=32
    )
    best_params: dict[str, Any] | None = Field(
        None,
        description="The winning parameters (also in lineage.estimator.params).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    best_score: float | None = Field(None, description="Mean cross-validated metric of the winner.")
    trials: int = Field(ge=0, description="Candidates evaluated.")
    seconds: float | None = Field(None, ge=0, description="Wall time of the search.")
    stopped_early: bool | None = Field(None, description="True when the time budget ended the search.")
    cv_folds: int | None = Field(None, ge=2, description="Cross-validation folds.")
