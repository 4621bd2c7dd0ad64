"""The row schema of captured traffic (docs/data-contract.md): requests -> chunks -> one Arrow table ->
Parquet bytes, and the hive partition path of a file. Pure functions, used by ``serving.capture``."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np

from .model import LoadedModel

# Columns every file has besides the features; partition keys come from the path.
META_COLUMNS = ("id", "request_id", "row", "timestamp")
OUTPUT_COLUMNS = ("prediction", "probabilities")
PARTITION_KEYS = ("model", "version", "date", "hour")
COMPRESSION = "zstd"
RESERVED = frozenset(META_COLUMNS + OUTPUT_COLUMNS + PARTITION_KEYS)


def row_id(request_id: str, row: int, rows: int) -> str:
    """The id a label refers to: the request id for a one-row request, ``<request id>:<row>`` otherwise."""
    return request_id if rows == 1 else f"{request_id}:{row}"


class Entry(NamedTuple):
    """One answered request, as the request path queues it (references, no copies)."""

    ts: float
    request_id: str
    model: LoadedModel
    feeds: dict[str, np.ndarray]
    outputs: list[np.ndarray]
    rows: int


class Chunk(NamedTuple):
    """Consecutive requests of one hour with their arrays joined: what the queue holds."""

    model: LoadedModel
    ts: np.ndarray  # per request (float64 seconds)
    request_ids: list[str]  # per request
    counts: np.ndarray  # rows per request (int64)
    feeds: dict[str, np.ndarray]  # rows of all requests
    outputs: list[np.ndarray]
    rows: int
    table: Any = None  # the chunk as an Arrow table (built on the event loop; the arrays are then dropped)


def compact(entries: Sequence[Entry]) -> Chunk:
    """Join a few hundred requests' arrays; done on the event loop in small steps so that the writer thread
    gets few large arrays (long GIL-holding loops in a thread would stall the event loop)."""
    e0 = entries[0]
    return Chunk(
        e0.model,
        np.fromiter((e.ts for e in entries), np.float64, len(entries)),
        [e.request_id for e in entries],
        np.fromiter((e.rows for e in entries), np.int64, len(entries)),
        {k: np.concatenate([e.feeds[k] for e in entries]) for k in e0.feeds},
        [np.concatenate([e.outputs[i] for e in entries]) for i in range(len(e0.outputs))],
        sum(e.rows for e in entries),
    )


def feature_columns(model: LoadedModel) -> list[tuple[str, str, int | None]]:
    """(column, input, column index or None for the whole input) in file order."""
    if len(model.inputs) == 1 and len(model.inputs[0].shape) == 2:
        info = model.inputs[0]
        if model.profile is not None:
            feats = sorted(model.profile.features, key=lambda f: f.index)
            return [(f.name, info.name, f.index) for f in feats]
        width = info.shape[1]
        if width > 0:
            return [(f"{info.name}_{j}", info.name, j) for j in range(width)]
    return [(t.name, t.name, None) for t in model.inputs]


def _column(values: np.ndarray) -> Any:
    import pyarrow as pa

    if values.dtype == object:
        return pa.array([v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values])
    if values.ndim > 1:
        flat = values.reshape(values.shape[0], -1)
        return pa.FixedSizeListArray.from_arrays(pa.array(flat.ravel()), flat.shape[1])
    return pa.array(values)


def build_table(chunks: Sequence[Chunk]) -> Any:
    """One Arrow table for ``chunks`` (all of one model): the row schema of docs/data-contract.md.

    Vectorised (numpy and Arrow compute): the writer thread shares the cores with the request path."""
    import pyarrow as pa
    import pyarrow.compute as pc

    model = chunks[0].model
    counts = np.concatenate([c.counts for c in chunks])
    n = len(counts)
    total = int(counts.sum())
    owner = np.repeat(np.arange(n), counts)  # entry index of every row
    starts = np.cumsum(counts) - counts
    rows = (np.arange(total) - starts[owner]).astype(np.int32)
    rids = pa.array(list(itertools.chain.from_iterable(c.request_ids for c in chunks)), pa.string())
    request_id = rids if total == n else rids.take(pa.array(owner))
    if total == n:
        ids = request_id
    else:
        joined = pc.binary_join_element_wise(request_id, pc.cast(pa.array(rows), pa.string()), ":")
        ids = pc.if_else(pa.array(counts[owner] == 1), request_id, joined)
    ts = np.concatenate([c.ts for c in chunks])
    micros = np.round(ts * 1e6).astype(np.int64)[owner]
    cols: dict[str, Any] = {
        "id": ids,
        "request_id": request_id,
        "row": pa.array(rows),
        "timestamp": pa.array(micros, pa.timestamp("us", tz="UTC")),
    }
    inputs: dict[str, np.ndarray] = {}
    features = feature_columns(model)
    clash = sorted({name for name, _, _ in features} & RESERVED)
    if clash:
        raise ValueError(f"feature name(s) {clash} clash with the capture's own columns")
    for name, inp, j in features:
        if inp not in inputs:
            whole = np.concatenate([c.feeds[inp] for c in chunks])
            inputs[inp] = np.ascontiguousarray(whole.T) if j is not None else whole  # columns contiguous
        arr = inputs[inp]
        cols[name] = _column(arr[j] if j is not None else arr)
    first = np.concatenate([c.outputs[0] for c in chunks])
    if first.ndim == 2 and first.shape[1] == 1:
        first = first[:, 0]
    cols["prediction"] = _column(first)
    if model.task == "classification" and len(chunks[0].outputs) > 1:
        proba = np.concatenate([c.outputs[1] for c in chunks])
        if proba.ndim == 2:
            width = proba.shape[1]
            offsets = pa.array(np.arange(0, (total + 1) * width, width, dtype=np.int32))
            values = pa.array(np.ascontiguousarray(proba, dtype=np.float32).ravel())
            cols["probabilities"] = pa.ListArray.from_arrays(offsets, values)
    return pa.table(cols)


def encode_parquet(table: Any) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = pa.BufferOutputStream()
    # no dictionary pages: features are mostly distinct floats; zstd alone is 3x faster and smaller here
    pq.write_table(table, buf, compression=COMPRESSION, use_dictionary=False)
    return bytes(buf.getvalue().to_pybytes())


def partition_path(model: str, version: str, ts: float) -> str:
    t = datetime.fromtimestamp(ts, UTC)
    return f"model={model}/version={version}/date={t:%Y-%m-%d}/hour={t:%H}"
