"""The baseline profile: the training-data distribution a served version is compared against.

This module is the single definition of the format shared by the trainer (writes it), the server
(pre-creates its drift histograms from it) and the operator (reads it to score live counts).

Format (``profile.json``, ``formatVersion`` 1)::

    {
      "formatVersion": 1,
      "task": "classification" | "regression",
      "rows": 120,                         # training rows profiled
      "features": [
        {"name": "sepal_length", "index": 0, "kind": "numeric",
         "edges": [4.8, 5.0, ...],          # interior edges: type-7 quantiles at 10%..90%, de-duplicated
         "counts": [13, 11, ...],           # len(edges)+1 right-closed bins (-inf,e1], ..., (ek,+inf)
         "missingShare": 0.0,
         "mean": 5.8, "std": 0.82,          # ddof=0, over the non-missing values
         "sample": [...]},                  # up to SAMPLE_SIZE seeded values, for KS / Wasserstein
        {"name": "colour", "index": 3, "kind": "categorical",
         "categories": ["blue", "red"], "counts": [40, 80], "missingShare": 0.0}
      ],
      "prediction": {"kind": "class", "classes": ["0", "1", "2"], "counts": [40, 41, 39]}
                  | {"kind": "numeric", "edges": [...], "counts": [...]}
    }

The bins are right-closed exactly like Prometheus ``le`` buckets: a value ``x`` falls in bin ``i`` when
``edges[i-1] < x <= edges[i]``, so the cumulative count of bucket ``le=edges[i]`` equals the sum of
``counts[0..i]`` and ``le=+Inf`` is the total.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

FORMAT_VERSION = 1
QUANTILES = tuple(q / 10 for q in range(1, 10))  # 10% .. 90%
SAMPLE_SIZE = 2000


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")


class NumericFeature(_Model):
    name: str
    index: int
    kind: Literal["numeric"] = "numeric"
    edges: list[float]
    counts: list[int]
    missing_share: float = Field(0.0, alias="missingShare")
    mean: float = 0.0
    std: float = 0.0
    sample: list[float] = Field(default_factory=list)


class CategoricalFeature(_Model):
    name: str
    index: int
    kind: Literal["categorical"] = "categorical"
    categories: list[str]
    counts: list[int]
    missing_share: float = Field(0.0, alias="missingShare")


class ClassPrediction(_Model):
    kind: Literal["class"] = "class"
    classes: list[str]
    counts: list[int]


class NumericPrediction(_Model):
    kind: Literal["numeric"] = "numeric"
    edges: list[float]
    counts: list[int]


class Profile(_Model):
    format_version: int = Field(FORMAT_VERSION, alias="formatVersion")
    task: Literal["classification", "regression"]
    rows: int
    features: list[Annotated[NumericFeature | CategoricalFeature, Field(discriminator="kind")]]
    prediction: ClassPrediction | NumericPrediction | None = Field(default=None, discriminator="kind")

    def feature(self, name: str) -> NumericFeature | CategoricalFeature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(by_alias=True, mode="json"), indent=1, sort_keys=False)


def load_profile(source: str | bytes | Path) -> Profile:
    """Parse a profile from JSON text/bytes or a file path."""
    if isinstance(source, Path):
        source = source.read_bytes()
    return Profile.model_validate_json(source)


def quantile_edges(values: Sequence[float] | np.ndarray) -> list[float]:
    """Interior bin edges: type-7 quantiles at 10%..90% of the non-missing values, de-duplicated."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return []
    q = np.quantile(x, QUANTILES)  # numpy's default method is Hyndman & Fan type 7
    return [float(v) for v in np.unique(q)]


def bin_counts(edges: Sequence[float], values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Counts per right-closed bin ``(e_{i-1}, e_i]``; NaNs are not counted. Length ``len(edges)+1``."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    idx = np.searchsorted(np.asarray(edges, dtype=float), x, side="left")
    return np.bincount(idx, minlength=len(edges) + 1)


def sorted_edges_counts(values: Sequence[float] | np.ndarray) -> tuple[list[float], list[int]]:
    """``quantile_edges`` and ``bin_counts`` of the non-missing values, computed from one sort: the quantiles
    of a sorted array are the same numbers, and the right-closed counts are differences of
    ``searchsorted(sorted, edge, 'right')``. About 15x faster on 10^6 values than a quantile partition plus a
    binary search per value; identical results (property-tested against the two functions)."""
    x = np.asarray(values)
    x = np.sort(x[~np.isnan(x)]).astype(np.float64, copy=False)
    if x.size == 0:
        return [], [0]
    edges = np.unique(np.quantile(x, QUANTILES))
    upto = np.searchsorted(x, edges, side="right")
    counts = np.diff(np.concatenate([[0], upto, [x.size]]))
    return [float(v) for v in edges], [int(c) for c in counts]


def numeric_feature(name: str, index: int, values: np.ndarray, *, seed: int = 0) -> NumericFeature:
    x = np.asarray(values, dtype=np.float64)
    nan = np.isnan(x)
    present = x[~nan]
    edges, counts = sorted_edges_counts(np.asarray(values)[~nan])
    rng = np.random.default_rng(seed)
    sample = present if present.size <= SAMPLE_SIZE else rng.choice(present, SAMPLE_SIZE, replace=False)
    return NumericFeature(
        name=name,
        index=index,
        edges=edges,
        counts=counts,
        missing_share=float(nan.mean()) if x.size else 0.0,
        mean=float(present.mean()) if present.size else 0.0,
        std=float(present.std()) if present.size else 0.0,
        sample=[float(v) for v in sample],
    )


def categorical_feature(name: str, index: int, values: Sequence[Any]) -> CategoricalFeature:
    arr = np.asarray(values, dtype=object)
    missing_mask = np.array([v is None or (isinstance(v, float) and np.isnan(v)) for v in arr], dtype=bool)
    present = [str(v) for v in arr[~missing_mask]]
    categories: list[str] = []
    counts: list[int] = []
    if present:
        cats, cnts = np.unique(np.asarray(present, dtype=str), return_counts=True)
        categories, counts = [str(c) for c in cats], [int(c) for c in cnts]
    return CategoricalFeature(
        name=name,
        index=index,
        categories=categories,
        counts=counts,
        missing_share=float(missing_mask.mean()) if arr.size else 0.0,
    )
