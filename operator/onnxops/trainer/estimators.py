"""The estimator allow-list (from the API's ESTIMATORS) and the Pipeline the trainer fits."""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any

from onnxops.api.v1alpha1.trainingjob import CLASSIFIERS, ESTIMATORS, Estimator

from . import boosting
from .cpus import available_cpus
from .errors import InvalidSpec

# scikit-learn module of every allow-listed class (the API's ESTIMATORS is the single list of names).
_MODULES: dict[str, str] = {
    **dict.fromkeys(
        (
            "LogisticRegression",
            "SGDClassifier",
            "RidgeClassifier",
            "LinearRegression",
            "Ridge",
            "Lasso",
            "ElasticNet",
            "SGDRegressor",
        ),
        "sklearn.linear_model",
    ),
    **dict.fromkeys(("LinearSVC", "SVC", "LinearSVR", "SVR"), "sklearn.svm"),
    **dict.fromkeys(("DecisionTreeClassifier", "DecisionTreeRegressor"), "sklearn.tree"),
    **dict.fromkeys(
        (
            "RandomForestClassifier",
            "ExtraTreesClassifier",
            "GradientBoostingClassifier",
            "HistGradientBoostingClassifier",
            "RandomForestRegressor",
            "ExtraTreesRegressor",
            "GradientBoostingRegressor",
            "HistGradientBoostingRegressor",
        ),
        "sklearn.ensemble",
    ),
    **dict.fromkeys(("KNeighborsClassifier", "KNeighborsRegressor"), "sklearn.neighbors"),
    **dict.fromkeys(("GaussianNB", "BernoulliNB", "MultinomialNB"), "sklearn.naive_bayes"),
    **dict.fromkeys(("MLPClassifier", "MLPRegressor"), "sklearn.neural_network"),
}
# Trees split on raw thresholds: a scaler in front changes nothing for sklearn but makes the float32 ONNX
# scaler land on the other side of a threshold now and then, which breaks exact label parity.
TREE_BASED = frozenset(
    n for n in ESTIMATORS if "Tree" in n or "Forest" in n or "GradientBoosting" in n or n in boosting.BOOSTING
)
_SCALERS = {"standard": "StandardScaler", "minmax": "MinMaxScaler", "robust": "RobustScaler"}
_PARAM_IN_MESSAGE = re.compile(r"The '([A-Za-z_0-9]+)' parameter")


def task_of(class_name: str) -> str:
    return "classification" if class_name in CLASSIFIERS else "regression"


def estimator_class(class_name: str) -> type:
    if class_name not in ESTIMATORS or (class_name not in _MODULES and class_name not in boosting.BOOSTING):
        raise InvalidSpec(
            f"estimator.className: {class_name!r} is not allow-listed; one of {', '.join(ESTIMATORS)}"
        )
    if class_name in boosting.BOOSTING:
        try:
            return boosting.estimator_class(class_name)
        except ImportError as e:
            lib = boosting.library_of(class_name)
            raise InvalidSpec(
                f"estimator.className: {class_name} needs the {lib} package, which this "
                f"trainer image lacks ({e})"
            ) from None
    cls: type = getattr(importlib.import_module(_MODULES[class_name]), class_name)
    return cls


def valid_param_names(cls: type) -> list[str]:
    if cls.__name__ in boosting.BOOSTING:
        return boosting.param_names(cls)
    sig = inspect.signature(cls.__init__)  # type: ignore[misc]
    return [n for n, p in sig.parameters.items() if n != "self" and p.kind is not p.VAR_KEYWORD]


def make_estimator(spec: Estimator, seed: int) -> Any:
    """Instantiate and validate the estimator; every bad parameter is named in the error."""
    cls = estimator_class(spec.class_name)
    params = dict(spec.params or {})
    names = valid_param_names(cls)
    for p in params:
        if p not in names:
            raise InvalidSpec(
                f"estimator.params.{p}: unknown parameter for {spec.class_name}; "
                f"valid: {', '.join(sorted(names))}"
            )
    if "random_state" in names and "random_state" not in params:
        params["random_state"] = seed
    if spec.class_name in boosting.BOOSTING:
        params = {**boosting.defaults(spec.class_name, available_cpus()), **params}
    try:
        est = cls(**params)
        validate = getattr(est, "_validate_params", None)  # scikit-learn >= 1.2: its own type/range rules
        if callable(validate) and hasattr(est, "_parameter_constraints"):  # not xgboost's, lightgbm's
            validate()  # now, before any data is read, rather than at fit
    except (TypeError, ValueError) as e:
        m = _PARAM_IN_MESSAGE.search(str(e))
        where = f"estimator.params.{m.group(1)}" if m else "estimator.params"
        raise InvalidSpec(f"{where}: {e}") from None
    return est


def build_pipeline(spec: Estimator, *, seed: int, categorical: list[int]) -> Any:
    """[one-hot for categorical columns] -> [scaler] -> estimator, as a scikit-learn Pipeline."""
    from sklearn import preprocessing
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if spec.scaling != "none" and spec.class_name in TREE_BASED:
        raise InvalidSpec(
            f"estimator.scaling: {spec.scaling!r} before the tree-based {spec.class_name} "
            "changes nothing but breaks exact float32 ONNX parity; use scaling: none"
        )
    est = make_estimator(spec, seed)
    scaler = getattr(preprocessing, _SCALERS[spec.scaling])() if spec.scaling != "none" else None
    steps: list[tuple[str, Any]] = []
    if categorical:
        onehot = preprocessing.OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        steps.append(
            (
                "encode",
                ColumnTransformer(
                    [("onehot", onehot, categorical)], remainder=scaler or "passthrough", sparse_threshold=0.0
                ),
            )
        )
    elif scaler is not None:
        steps.append(("scale", scaler))
    steps.append(("model", est))
    return Pipeline(steps)


def jsonable_params(est: Any) -> dict[str, Any]:
    """The estimator's effective parameters, as JSON values (others as their repr)."""
    out: dict[str, Any] = {}
    for k, v in sorted(est.get_params(deep=False).items()):
        if v is None or isinstance(v, bool | int | float | str):
            out[k] = v
        elif isinstance(v, tuple | list) and all(isinstance(x, int | float | str) for x in v):
            out[k] = list(v)
        else:
            out[k] = repr(v)
    return out
