"""``dataset.fromServing``: the rows an InferenceService captured in a window, joined with their labels.

Steps (docs/data-contract.md): list the Parquet files under the service's sink whose ``date``/``hour``
partition can hold the window (and the wanted ``version``\\s); read them, keep the rows whose ``timestamp``
is in the window, drop duplicate ids (the first capture wins); read the label files (CSV or Parquet with
``id`` and the target; the last label of an id wins); inner-join on ``id``; check ``minRows``; optionally
mix in rows of ``dataset.uri``. Every bad input fails with ``InvalidData``/``InvalidSpec`` naming it, so the
TrainingJob fails and nothing is registered. The lineage (window, row counts, digests of the file list
and of the labels) goes into metadata.json and the ModelVersion.
"""

from __future__ import annotations

import io
import os
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from onnxops import storage
from onnxops.api.v1alpha1.fromserving import FromServing
from onnxops.api.v1alpha1.trainingjob import Dataset
from onnxops.drift.window import duration_seconds

from .errors import DataError, InvalidData, InvalidSpec, LabelsPending

if TYPE_CHECKING:
    import pyarrow as pa

    from .data import Table

SINK_ENV = "ONNXOPS_FROM_SERVING_SINK_URI"  # set by the operator from the service's spec.logging
# the window's end (RFC 3339): the operator sets the TrainingJob's creation time, so that every attempt (a
# retry, a rebuild) reads the same window; default: now
NOW_ENV = "ONNXOPS_FROM_SERVING_NOW"
META = ("id", "request_id", "row", "timestamp", "prediction", "probabilities")
PARTITIONS = ("model", "version", "date", "hour")
_PART = re.compile(r"(?:^|/)model=[^/]+/version=(\d+)/date=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/[^/]+\.parquet$")


def list_files(uri: str) -> list[str]:
    """Relative paths of the visible files under a directory or prefix (hidden/temporary names skipped)."""
    p = storage.parse_uri(uri.rstrip("/") + "/_")
    if p.is_local:
        root = storage.local_path(storage.parse_uri(uri.rstrip("/") or uri))
        if root.is_file():
            return [""]
        if not root.is_dir():
            return []
        out = []
        for dirpath, dirnames, files in os.walk(root):
            dirnames[:] = [d for d in dirnames if not d.startswith((".", "_"))]
            out += [
                os.path.relpath(os.path.join(dirpath, f), root) for f in files if not f.startswith((".", "_"))
            ]
        return sorted(out)
    from onnxops.storage.s3 import client

    prefix = p.path[:-1]
    s3 = client()
    keys: list[str] = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=p.authority, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", [])]
    except Exception as e:
        raise DataError(f"{storage.redact(uri)}: cannot list: {type(e).__name__}: {str(e)[:200]}") from None
    if prefix in keys:
        return [""]
    base = prefix if prefix.endswith("/") or not prefix else prefix + "/"
    return sorted(
        k[len(base) :]
        for k in keys
        if k.startswith(base) and not any(part.startswith((".", "_")) for part in k[len(base) :].split("/"))
    )


def _read(uri: str, rel: str) -> bytes:
    full = storage.join_uri(uri, rel) if rel else uri
    try:
        return storage.read_bytes(full)
    except storage.StorageError as e:
        raise DataError(str(e)) from None


def window_of(fs: FromServing, now: datetime) -> tuple[datetime, datetime]:
    return now - timedelta(seconds=duration_seconds(fs.window)), now


def select_files(files: list[str], start: datetime, end: datetime, versions: list[int] | None) -> list[str]:
    """Capture files whose hour partition overlaps [start, end] and whose version is wanted."""
    out = []
    for f in files:
        m = _PART.search(f)
        if not m:
            continue
        hour = datetime.strptime(f"{m[2]} {m[3]}", "%Y-%m-%d %H").replace(tzinfo=UTC)
        if hour + timedelta(hours=1) <= start or hour > end:
            continue
        if versions and int(m[1]) not in versions:
            continue
        out.append(f)
    return out


def _uniform(t: pa.Table, version: int) -> pa.Table:
    """One file's table in types every version shares: versions answer with different output types (an
    INT64 label in one, BYTES class names in the next), so ``prediction`` becomes a string and
    ``probabilities`` a list of float64; features become float64 when numeric. Without this, reading the
    files of two such versions together fails in Arrow."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.types as pt

    cols, fields = [], []
    for f, col in zip(t.schema, t.columns, strict=True):
        if f.name in PARTITIONS:  # the path is the truth (version below)
            continue
        if f.name == "prediction":
            col = pc.cast(col, pa.string())
        elif f.name == "probabilities":
            col = pc.cast(col, pa.list_(pa.float64()))
        elif f.name not in META and (pt.is_integer(f.type) or pt.is_floating(f.type)):
            col = pc.cast(col, pa.float64())
        cols.append(col)
        fields.append(pa.field(f.name, col.type))
    cols.append(pa.array(np.full(t.num_rows, version, np.int64)))
    fields.append(pa.field("version", pa.int64()))
    return pa.Table.from_arrays(cols, schema=pa.schema(fields))


def feature_names(schema_names: list[str]) -> list[str]:
    return [c for c in schema_names if c not in META and c not in PARTITIONS]


def read_captured(
    sink: str, files: list[str], start: datetime, end: datetime, wanted: list[str] | None = None
) -> tuple[pd.DataFrame, list[str], list[str], bool]:
    """(the window's rows, distinct by id; the feature columns; the files with rows in the window; whether
    any file had the ``wanted`` features).

    ``wanted`` (dataset.features): files without all of them (a version with other feature names) are
    not read. Without it, the features are those every file with rows in the window has (in the first
    such file's order)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    tables: list[pa.Table] = []
    read: list[str] = []
    common: list[str] | None = None
    schema_ok = wanted is None
    lo, hi = pa.scalar(start, pa.timestamp("us", "UTC")), pa.scalar(end, pa.timestamp("us", "UTC"))
    for f in files:
        t = pq.read_table(io.BytesIO(_read(sink, f)))
        names = feature_names(t.column_names)
        if wanted is not None and any(w not in names for w in wanted):
            continue
        schema_ok = True
        ts = pc.cast(t.column("timestamp"), pa.timestamp("us", "UTC"))
        t = t.filter(pc.and_(pc.greater_equal(ts, lo), pc.less_equal(ts, hi)))
        if t.num_rows == 0:  # an hour partition that overlaps the window, with none of this file's rows
            continue
        common = names if common is None else [c for c in common if c in names]
        tables.append(_uniform(t, int(_PART.search(f)[1])))  # type: ignore[index]
        read.append(f)
    if not tables:
        return pd.DataFrame(), [], [], schema_ok
    frame = pa.concat_tables(tables, promote_options="default").to_pandas()
    frame = frame.sort_values("timestamp", kind="stable").drop_duplicates("id", keep="first")
    return frame, list(wanted) if wanted is not None else (common or []), read, schema_ok


def read_labels(uri: str, target: str) -> tuple[pd.DataFrame, str]:
    """(labels with columns id and target, sha256 over the files), with errors naming the problem."""
    shown = storage.redact(uri)
    files = [f for f in list_files(uri) if f == "" or f.endswith((".csv", ".parquet"))]
    if not files:
        raise InvalidData(f"dataset.fromServing.labels: no label files (*.csv, *.parquet) at {shown}")
    import hashlib

    digest = hashlib.sha256()
    frames = []
    for f in files:
        data = _read(uri, f)
        name = f or uri
        digest.update(f"{f}\n".encode() + hashlib.sha256(data).digest())
        try:
            part = (
                pd.read_parquet(io.BytesIO(data))
                if name.endswith(".parquet")
                else pd.read_csv(io.BytesIO(data), dtype={"id": str})
            )
        except Exception as e:
            raise InvalidData(f"dataset.fromServing.labels: cannot parse {name}: {str(e)[:200]}") from None
        if "id" not in part.columns:
            raise InvalidData(
                f"dataset.fromServing.labels: {storage.redact(name)} has no 'id' column "
                f"(columns: {', '.join(map(str, part.columns[:20]))})"
            )
        if target not in part.columns:
            raise InvalidData(
                f"dataset.fromServing.labels: {storage.redact(name)} has no target column "
                f"{target!r} (columns: {', '.join(map(str, part.columns[:20]))})"
            )
        frames.append(part[["id", target]])
    labels = pd.concat(frames, ignore_index=True)
    labels["id"] = labels["id"].astype(str)
    return labels.drop_duplicates("id", keep="last"), digest.hexdigest()


def _label_kinds(col: pd.Series) -> list[str]:
    """The kinds of value in an object column of labels: bool, int, float, str (missing values skipped)."""
    import numbers

    def kind(v: object) -> str:
        if isinstance(v, bool | np.bool_):
            return "bool"
        if isinstance(v, numbers.Integral):
            return "int"
        return "float" if isinstance(v, numbers.Real) else type(v).__name__

    return sorted({kind(v) for v in col if v is not None and v == v})


def _files_digest(files: list[str]) -> str:
    return storage.sha256_hex("".join(f + "\n" for f in files).encode())


def _stamp(t: datetime) -> str:
    """RFC 3339 in UTC, with the microseconds when there are any (the window must be exact to rebuild)."""
    t = t.astimezone(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if t.microsecond else "%Y-%m-%dT%H:%M:%SZ")


def load_from_serving(ds: Dataset, *, now: datetime | None = None) -> Table:
    """The training Table for ``dataset.fromServing`` (with ``lineage``)."""
    from .data import Table, load_table

    fs = ds.from_serving
    assert fs is not None
    if not ds.target:
        raise InvalidSpec("dataset.target is required with dataset.fromServing (the label column)")
    sink = fs.sink_uri or os.environ.get(SINK_ENV) or ""
    if not sink:
        raise InvalidSpec(
            f"dataset.fromServing: the sink of InferenceService {fs.service!r} is unknown "
            "(set fromServing.sinkUri, or let the operator resolve it)"
        )
    if now is None:
        raw = os.environ.get(NOW_ENV)
        now = datetime.fromisoformat(raw.replace("Z", "+00:00")) if raw else datetime.now(UTC)
    start, end = window_of(fs, now)
    shown = storage.redact(sink)
    files = select_files(list_files(sink), start, end, fs.versions)
    where = f"InferenceService {fs.service!r} at {shown}"
    if not files:
        raise InvalidData(
            f"dataset.fromServing: no captured traffic of {where} in the window "
            f"{_stamp(start)}..{_stamp(end)} (window {fs.window}"
            + (f", versions {fs.versions}" if fs.versions else "")
            + "); is spec.logging enabled on the service?"
        )
    named = list(ds.features) if ds.features else None
    captured, wanted, read, schema_ok = read_captured(sink, files, start, end, named)
    if not schema_ok:
        import pyarrow.parquet as pq

        available = feature_names(pq.read_schema(io.BytesIO(_read(sink, files[-1]))).names)
        raise InvalidData(
            f"dataset.fromServing: schema mismatch: dataset.features {named} are "
            f"not in the captured traffic, which has features {available}"
        )
    if captured.empty:
        raise InvalidData(
            f"dataset.fromServing: no captured rows of {where} in the window {_stamp(start)}..{_stamp(end)}"
        )
    if not wanted:
        raise InvalidData(
            f"dataset.fromServing: the captured files of {where} share no feature column "
            "(versions with other feature names); set dataset.features or fromServing.versions"
        )
    files = read
    if ds.target in wanted:
        raise InvalidData(f"dataset.fromServing: the target {ds.target!r} is also a captured feature")
    labels, labels_digest = read_labels(fs.labels.uri, ds.target)
    joined = captured[["id", *wanted]].merge(labels, on="id", how="inner")
    if len(joined) < fs.min_rows:
        raise LabelsPending(
            f"dataset.fromServing: {len(joined)} of {len(captured)} captured rows have a "
            f"label in {storage.redact(fs.labels.uri)}; minRows is {fs.min_rows}"
        )
    frame = joined[[*wanted, ds.target]].reset_index(drop=True)
    # label files of versions with other label types (class indices, class names) read as one object column:
    # the rows joined keep their own type again (int64, float64, str), and a mix of types is refused
    frame[ds.target] = frame[ds.target].infer_objects()
    if frame[ds.target].dtype == object and len(kinds := _label_kinds(frame[ds.target])) > 1:
        raise InvalidData(
            f"dataset.fromServing: the labels of the captured rows have different types "
            f"({', '.join(kinds)}): versions with different label types in the window; set "
            "fromServing.versions"
        )
    used = len(frame)
    if fs.mix is not None:
        original = load_table(ds.model_copy(update={"from_serving": None})).frame
        absent = [c for c in [*wanted, ds.target] if c not in original.columns]
        if absent:
            raise InvalidData(
                f"dataset.fromServing.mix: schema mismatch: dataset.uri lacks columns {absent} "
                "of the captured traffic"
            )
        share = fs.mix.row_share
        k = min(len(original), round(len(frame) * share / (1 - share)))
        picked = original.sample(n=k, random_state=0)[[*wanted, ds.target]]
        frame = pd.concat([frame, picked], ignore_index=True)
        used = len(frame)
    digest = _files_digest(files)
    lineage: dict[str, object] = {
        "service": fs.service,
        "sinkUri": shown,
        "windowStart": _stamp(start),
        "windowEnd": _stamp(end),
        "files": len(files),
        "filesDigest": digest,
        "rowsCaptured": len(captured),
        "rowsLabelled": len(joined),
        "rowsUsed": used,
        "labelsUri": storage.redact(fs.labels.uri),
        "labelsDigest": labels_digest,
    }
    if fs.versions:
        lineage["versions"] = list(fs.versions)
    return Table(frame, shown, digest, ds.target, lineage=lineage)
