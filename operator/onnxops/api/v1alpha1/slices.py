"""Held-out metrics per slice and fairness metrics, with their gates (TrainingJob ``spec.evaluation``), and
what a ModelVersion records of them.

Slice gates read like the global gates, ``<metric> <op> <number>``, and hold for *every* slice with at
least ``minRows`` held-out rows; ``<metric>_gap <op> <number>`` compares each slice with the whole held-out
set, the gap being how much worse the slice is (overall - slice for accuracy, f1_macro, roc_auc, r2; slice
- overall for log_loss, rmse, mae), so ``accuracy_gap <= 0.05`` says "every slice's accuracy is within 0.05
of the overall accuracy". Fairness gates name a fairlearn metric: ``demographic_parity_difference <= 0.1``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .common import KubeModel

COLUMN_MAX = 256
SLICE_METRICS: tuple[str, ...] = ("accuracy", "f1_macro", "roc_auc", "log_loss", "rmse", "mae", "r2")
FAIRNESS_METRICS: tuple[str, ...] = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "equalized_odds_ratio",
)
SLICE_GATE_PATTERN = (
    r"^(accuracy|f1_macro|roc_auc|log_loss|rmse|mae|r2)(_gap)? *(>=|<=|>|<) *-?[0-9]+(\.[0-9]+)?$"
)
FAIRNESS_GATE_PATTERN = (
    r"^(demographic_parity_difference|demographic_parity_ratio|equalized_odds_difference|equalized_odds_ratio)"
    r" *(>=|<=|>|<) *[0-9]+(\.[0-9]+)?$"
)
PATTERN_MESSAGES: dict[str, str] = {
    SLICE_GATE_PATTERN: "must read '<metric> <op> <number>' (every slice) or '<metric>_gap <op> <number>' "
    "(every slice against the overall value), e.g. 'accuracy_gap <= 0.05', with a metric among "
    + ", ".join(SLICE_METRICS)
    + " and an operator among >=, <=, >, <",
    FAIRNESS_GATE_PATTERN: "must read '<fairness metric> <op> <number>', e.g. "
    "'demographic_parity_difference <= 0.1', with a metric among "
    + ", ".join(FAIRNESS_METRICS)
    + " and an operator among >=, <=, >, <",
}
MAX_MV_SLICES = 24  # slice rows a ModelVersion (and the termination message) carries; metadata.json has all

Edges = Annotated[
    list[float],
    Field(
        min_length=1,
        max_length=32,
        description=(
            "Bin edges for a numeric column (any order; duplicates ignored): groups are '< e1', '[e1, e2)', "
            "..., '>= en'. Without bins every distinct value is a group."
        ),
    ),
]


class SliceFeature(KubeModel):
    """A column to slice the held-out rows by (a feature, or any other column of the data set)."""

    feature: str = Field(description="Column name.", min_length=1, max_length=COLUMN_MAX)
    bins: Edges | None = None


class Slices(KubeModel):
    """Held-out metrics per group of each column, and gates on every group."""

    features: list[SliceFeature] = Field(description="Columns to slice by.", min_length=1, max_length=8)
    metrics: list[Literal[SLICE_METRICS]] | None = Field(  # type: ignore[valid-type]
        None,
        description="Metrics per slice (of the estimator's task); default: accuracy for classifiers, "
        "rmse for regressors, plus those the gates name.",
        max_length=4,
    )
    min_rows: int = Field(10, ge=1, description="Slices with fewer held-out rows are reported, not gated.")
    max_groups: int = Field(
        20,
        ge=2,
        le=100,
        description="A column with more groups in the held-out rows "
        "fails the training (InvalidData): bin it, or raise this.",
    )
    gates: list[Annotated[str, Field(pattern=SLICE_GATE_PATTERN, max_length=64)]] | None = Field(
        None,
        description="Gates every slice must meet, e.g. 'accuracy >= 0.8' or 'accuracy_gap <= 0.05' "
        "(no slice more than 0.05 below the overall accuracy). A failed gate fails the training.",
        max_length=16,
    )


class Fairness(KubeModel):
    """fairlearn's group fairness metrics for one sensitive column (classifiers only)."""

    sensitive_feature: str = Field(
        description="The sensitive column (a feature or any other column).",
        min_length=1,
        max_length=COLUMN_MAX,
    )
    bins: Edges | None = None
    positive_label: str | None = Field(
        None,
        description="The favourable class; default: the larger of two class labels (a multiclass target "
        "needs it; the metrics are then one class against the rest).",
        max_length=256,
    )
    gates: list[Annotated[str, Field(pattern=FAIRNESS_GATE_PATTERN, max_length=80)]] | None = Field(
        None,
        description="e.g. 'demographic_parity_difference <= 0.1', 'demographic_parity_ratio >= 0.8', "
        "'equalized_odds_difference <= 0.1'. A failed gate fails the training.",
        max_length=8,
    )


class SliceResult(KubeModel):
    """Held-out metrics of one group."""

    feature: str = Field(description="The column.", max_length=COLUMN_MAX)
    group: str = Field(description="The value, or the bin, e.g. '[30, 50)'.", max_length=128)
    rows: int = Field(ge=0, description="Held-out rows in the group.")
    metrics: dict[str, float] = Field(
        description="Metric -> value (a metric undefined on the group is absent)."
    )


class FairnessResult(KubeModel):
    """fairlearn's metrics on the held-out rows."""

    sensitive_feature: str = Field(description="The sensitive column.", max_length=COLUMN_MAX)
    positive_label: str | None = Field(None, description="The favourable class.", max_length=256)
    metrics: dict[str, float] = Field(description="Fairness metric -> value.")
    selection_rates: dict[str, float] | None = Field(
        None, description="Share of each group predicted as the favourable class."
    )
