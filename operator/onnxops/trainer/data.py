"""Load the training data set and turn it into one float32 feature matrix plus a target vector.

Decisions (documented for users in the report and metadata.json):

- The ONNX model takes ONE input tensor ``input`` of FP32, shape ``[-1, n_features]``, features in
  ``signature.featureNames`` order. So every feature must be numeric (bool counts as 0/1).
- ``dataset.categoricalFeatures`` must hold integer codes; they are one-hot encoded inside the model
  (OneHotEncoder(handle_unknown='ignore') converts to ONNX only for int64 or string categories, and a string
  input would need a second input tensor). Unknown codes at serving time encode to all zeros.
- The data set's digest is the sha256 of the file's bytes; for ``sklearn://<name>`` it is the sha256 of
  the canonical CSV of the bundled frame: ``frame.to_csv(index=False, lineterminator="\\n")`` in UTF-8,
  features then ``target``.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from onnxops import storage
from onnxops.api.v1alpha1.trainingjob import Dataset

from .errors import DataError, DataNotFound, InvalidData, InvalidSpec

log = logging.getLogger("onnxops.trainer")

SKLEARN_DATASETS = ("iris", "wine", "breast_cancer", "digits", "diabetes")
SKLEARN_TARGET = "target"
MIN_ROWS = 10
CSV_CHUNK_ROWS = 200_000


@dataclass
class Table:
    frame: pd.DataFrame
    uri: str
    sha256: str
    target: str
    lineage: dict[str, Any] | None = None  # fromServing: what was read (ModelVersion lineage)


@dataclass
class Features:
    X: np.ndarray | None  # float32, C-contiguous, rows x features; released by take_split()
    y: np.ndarray
    names: list[str]
    categorical: list[int] = field(default_factory=list)  # indices into names

    def take_split(self, train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(X[train], X[test]), then the full matrix is dropped."""
        assert self.X is not None, "features already split"
        X, self.X = self.X, None
        return X[train], X[test]


def canonical_csv_sha256(frame: pd.DataFrame) -> str:
    return storage.sha256_hex(frame.to_csv(index=False, lineterminator="\n").encode("utf-8"))


def _load_sklearn(name: str) -> pd.DataFrame:
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    frame: pd.DataFrame = bunch.frame
    return frame


def _read_parquet(buf: io.BytesIO | str) -> pd.DataFrame:
    """Parquet one column at a time, giving Arrow's cached buffers back after each: peak memory is about
    the frame plus one column (``pd.read_parquet`` peaks near 3x the frame)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(buf)
    cols: dict[str, pd.Series] = {}
    for name in pf.schema_arrow.names:
        t = pf.read(columns=[name])
        # a copy owned by numpy: zero-copy Series would keep Arrow's pool (which caches freed memory
        # instead of returning it) holding the whole table for the rest of the run
        cols[name] = t.column(0).to_pandas().copy(deep=True)
        del t
        pa.default_memory_pool().release_unused()
    frame = pd.DataFrame(cols, copy=False)
    cols.clear()
    return frame


def _read_csv(buf: io.BytesIO | str) -> pd.DataFrame:
    """CSV in chunks of CSV_CHUNK_ROWS rows, kept as one contiguous array per column and joined column by
    column: peak memory about 1.2x the frame instead of about 4x for one ``read_csv`` of a large file.
    Each chunk is parsed by pandas as usual; a column whose type differs between chunks is joined by
    numpy's type promotion (int + float -> float; anything + text -> object, refused later as non-numeric)."""
    parts: dict[str, list[np.ndarray]] = {}
    for chunk in pd.read_csv(buf, chunksize=CSV_CHUNK_ROWS):
        for c in chunk.columns:
            parts.setdefault(str(c), []).append(np.array(chunk[c].to_numpy(), copy=True))
        del chunk
    cols = {c: (v[0] if len(v) == 1 else np.concatenate(v)) for c, v in _drain(parts)}
    return pd.DataFrame(cols, copy=False)


def _drain(parts: dict[str, list[np.ndarray]]) -> Iterator[tuple[str, list[np.ndarray]]]:
    """Hand out the per-column chunk lists one at a time, dropping each from ``parts`` first."""
    for c in list(parts):
        yield c, parts.pop(c)


def _parse(buf: io.BytesIO | str, fmt: str, uri: str) -> pd.DataFrame:
    try:
        return _read_parquet(buf) if fmt == "parquet" else _read_csv(buf)
    except Exception as e:  # pandas/pyarrow raise many types; all mean "not this format"
        raise InvalidData(f"cannot parse {uri} as {fmt}: {type(e).__name__}: {str(e)[:300]}") from None


def load_table(ds: Dataset) -> Table:
    """Read the data set named by the spec; verify the sha256 pin; record the digest."""
    if ds.from_serving is not None:  # captured traffic joined with labels (trainer/from_serving.py)
        from .from_serving import load_from_serving

        return load_from_serving(ds)
    if ds.uri is None:
        raise InvalidSpec("dataset.uri is required (or dataset.fromServing)")
    uri = ds.uri
    if uri.startswith("sklearn://"):
        name = uri.removeprefix("sklearn://")
        if name not in SKLEARN_DATASETS:
            raise InvalidSpec(
                f"dataset.uri: unknown bundled data set {name!r}; one of {', '.join(SKLEARN_DATASETS)}"
            )
        frame = _load_sklearn(name)
        digest = canonical_csv_sha256(frame)
        if ds.sha256 and ds.sha256 != digest:
            raise DataNotFound(f"sha256 mismatch for {uri}: expected {ds.sha256}, got {digest}")
        return Table(frame, uri, digest, ds.target or SKLEARN_TARGET)
    shown = storage.redact(uri)  # what logs, messages and lineage carry (no query string, no userinfo)
    if not ds.target:
        raise InvalidSpec(f"dataset.target is required for {shown}")
    try:
        p = storage.parse_uri(uri)
        if p.is_local:
            path = storage.local_path(p)
            if not path.is_file():
                raise DataNotFound(f"dataset {shown}: no such file ({path})")
            digest = storage.sha256_file(path)  # streamed: the file is not held twice in memory
            storage.verify_digest(uri, digest, ds.sha256)
            frame = _parse(str(path), ds.format, shown)
        else:
            data = storage.read_bytes(uri, ds.sha256)
            digest = storage.sha256_hex(data)
            frame = _parse(io.BytesIO(data), ds.format, shown)
            del data
    except (storage.NotFound, storage.DigestMismatch) as e:  # final: the same answer on every retry
        raise DataNotFound(f"dataset {shown}: {e}" if shown not in str(e) else str(e)) from None
    except storage.StorageError as e:  # unreachable, timeout, 5xx, denied: the Job retries
        raise DataError(f"dataset {shown}: {e}" if shown not in str(e) else str(e)) from None
    except OSError as e:
        raise DataError(f"dataset {shown}: {e}") from None
    return Table(frame, shown, digest, ds.target)


def _example(values: pd.Series) -> str:
    present = values.dropna()
    return repr(present.iloc[0]) if len(present) else "<all missing>"


def _short_list(names: list[str], limit: int = 20) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _is_numeric(s: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s))


def _target(s: pd.Series, name: str, classification: bool) -> np.ndarray:
    out: np.ndarray
    if int(s.isna().sum()):
        raise InvalidData(f"target column {name!r} has {int(s.isna().sum())} missing values")
    if not classification:
        if not _is_numeric(s) or pd.api.types.is_bool_dtype(s):
            raise InvalidData(
                f"target column {name!r} is not numeric (e.g. {_example(s)}); "
                "a regressor needs a numeric target"
            )
        out = s.to_numpy(dtype=np.float64)
        return out
    if pd.api.types.is_bool_dtype(s):
        out = s.to_numpy(dtype=np.int64)
        return out
    if pd.api.types.is_numeric_dtype(s):
        v = s.to_numpy(dtype=np.float64)
        if not np.all(np.isfinite(v)) or not np.all(v == np.round(v)):
            raise InvalidData(
                f"target column {name!r} has non-integer numbers (e.g. {_example(s)}); "
                "use a regressor or integer/string class labels"
            )
        out = v.astype(np.int64)
        return out
    out = s.astype(str).to_numpy(dtype=object)
    return out


def select_features(table: Table, ds: Dataset, *, classification: bool) -> Features:
    """Columns -> one float32 matrix (features in order) and the target, with clear errors."""
    frame, uri, target = table.frame, table.uri, table.target
    cols = [str(c) for c in frame.columns]
    frame.columns = cols
    if target not in cols:
        raise InvalidData(f"target column {target!r} not found in {uri}; columns: {_short_list(cols)}")
    names = list(ds.features) if ds.features else [c for c in cols if c != target]
    if target in names:
        raise InvalidSpec(f"dataset.features lists the target column {target!r}")
    if len(set(names)) != len(names):
        raise InvalidSpec("dataset.features has duplicates")
    for n in names:
        if n not in cols:
            raise InvalidData(f"feature {n!r} not found in {uri}; columns: {_short_list(cols)}")
    if not names:
        raise InvalidData(f"{uri} has no feature columns besides the target {target!r}")
    cats = list(ds.categorical_features or [])
    for c in cats:
        if c not in names:
            raise InvalidSpec(f"dataset.categoricalFeatures: {c!r} is not one of the features")
    for n in names:
        s = frame[n]
        if not _is_numeric(s):
            hint = (
                (
                    "it is listed in dataset.categoricalFeatures, but categories must be integer codes "
                    "(the model's input is one FP32 tensor)"
                )
                if n in cats
                else "list it in dataset.categoricalFeatures (as integer codes) or drop it"
            )
            raise InvalidData(f"feature {n!r} is not numeric (dtype {s.dtype}, e.g. {_example(s)}); {hint}")
    if len(frame) < MIN_ROWS:
        raise InvalidData(f"{uri} has {len(frame)} rows; at least {MIN_ROWS} are needed")
    y = _target(frame[target], target, classification)
    for c in cats:
        v = frame[c].to_numpy(dtype=np.float64, na_value=np.nan)
        v = v[~np.isnan(v)]
        bad = v[v != np.round(v)]
        if bad.size:
            raise InvalidData(f"categorical feature {c!r} must hold integer codes; found {float(bad[0])!r}")
    X = np.empty((len(frame), len(names)), dtype=np.float32)
    for j, n in enumerate(names):  # column by column: no float64 copy of the whole table
        X[:, j] = frame[n].to_numpy(dtype=np.float32, na_value=np.nan)
    return Features(X, y, names, [names.index(c) for c in cats])
