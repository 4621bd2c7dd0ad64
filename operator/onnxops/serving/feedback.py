"""Ground truth in: the feedback endpoint, per-version labelled-prediction counters, the label sink.

Contract (docs/feedback.md): ``POST /v2/models/<name>/feedback`` and ``POST /v1/models/<name>:feedback``
take one item ``{"id", "truth"}`` (optionally ``"version"`` and ``"prediction"`` as the client got them in
the infer response), a JSON array of items, or ``{"items": [...]}``. The answer is 200 with counts, or a 4xx
naming the first bad item's index and the problem; a request with a bad item counts nothing (the client
fixes it and sends it again without double counting).

Why counters and not a per-request store: the receiving replica turns each labelled prediction into
monotonic counters per (model, version, inferenceservice) — a confusion count ``(truth, predicted)`` for a
classifier, count / sum |err| / sum err² for a regressor. Summed over the replicas (Prometheus
``sum(increase(...[window]))`` or a direct scrape of every pod), they give the exact per-version numbers
whichever replica received the feedback and however late it came, as long as the item carries the version
and prediction (the client echoes them). Without them, the replica resolves the id from its bounded map of
recent predictions (``RecentPredictions``) when it served the request itself; otherwise the item is counted
as unresolved and left to the batch path (label files joined with the captured rows,
``onnxops.trainer.evaluate_labels``). Every item is also written to the label sink in the label-file format
of docs/data-contract.md (columns ``id`` and the target), so ``dataset.fromServing`` trains on it.

Hand-written because no library does this: the item validation is the model's own (its task and class
labels), and the counters are exposed by the server's one prometheus_client Collector style.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from onnxops.drift import names as N

from .model import LoadedModel
from .sink import Sink

log = logging.getLogger("onnxops.serving")

# --- metric families (docs/metrics.md "Feedback") -------------------------------------------------------
FEEDBACK_PREDICTIONS = "onnxops_feedback_predictions_total"  # counter {scope, truth, predicted}
FEEDBACK_LABELS = "onnxops_feedback_labels_total"  # counter {scope}: labelled predictions
FEEDBACK_ABS_ERROR = "onnxops_feedback_absolute_error_total"  # counter {scope}: sum |truth - prediction|
FEEDBACK_SQ_ERROR = "onnxops_feedback_squared_error_total"  # counter {scope}: sum (truth - prediction)^2
FEEDBACK_UNRESOLVED = "onnxops_feedback_unresolved_total"  # counter {scope (receiving replica)}
FEEDBACK_REJECTED = "onnxops_feedback_rejected_items_total"  # counter {scope}: items of refused requests
FEEDBACK_SINK_ROWS = "onnxops_feedback_sink_rows_total"  # counter {scope, result=written|dropped}
FEEDBACK_SINK_UP = "onnxops_feedback_sink_up"  # gauge {scope}
LABEL_TRUTH, LABEL_PREDICTED, LABEL_RESULT = "truth", "predicted", "result"
FEEDBACK_FAMILIES = (
    FEEDBACK_PREDICTIONS,
    FEEDBACK_LABELS,
    FEEDBACK_ABS_ERROR,
    FEEDBACK_SQ_ERROR,
    FEEDBACK_UNRESOLVED,
)

# --- settings (environment of the serving pod) ------------------------------------------------------------
ENV_LABELS_URI = "ONNXOPS_FEEDBACK_LABELS_URI"  # default: <capture sink>/_labels/ when capture is on
ENV_TARGET = "ONNXOPS_FEEDBACK_TARGET"  # the label files' target column (= the TrainingJob's dataset.target)
ENV_RECENT = "ONNXOPS_FEEDBACK_RECENT_REQUESTS"  # requests remembered for id resolution (0 = off)
ENV_FLUSH = "ONNXOPS_FEEDBACK_FLUSH_INTERVAL"  # seconds between label file writes
DEFAULT_TARGET = "label"
DEFAULT_RECENT = 100_000
DEFAULT_FLUSH = 30.0
MAX_ITEMS = 10_000  # per request
MAX_BUFFERED = 100_000  # label rows held for the sink at most; more are dropped and counted
MAX_VERSIONS = 64  # distinct version label values (beyond: unresolved), bounds the series
MAX_FREE_CLASSES = 256  # distinct class labels when the model has no class list
MAX_ID = 256
_VERSION = re.compile(r"^[1-9][0-9]{0,8}$")


class FeedbackError(Exception):
    def __init__(self, status: int, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.index = status, message, index

    def doc(self) -> dict[str, Any]:
        d: dict[str, Any] = {"error": self.message}
        if self.index is not None:
            d["item"] = self.index
        return d


LabelRow = tuple[float, str, Any, str | None, Any]  # (unix time, id, truth as written, version, prediction)


class _Unwritten(Exception):
    """The label sink failed; ``rows`` were not written."""

    def __init__(self, rows: list[LabelRow]) -> None:
        super().__init__(f"{len(rows)} label rows not written")
        self.rows = rows


@dataclass(frozen=True)
class Item:
    id: str
    truth: str | float  # a class label (its str form) or a value
    raw_truth: Any  # as it goes to the label file (the model's label type)
    version: str | None
    prediction: str | float | None


@dataclass(frozen=True)
class FeedbackConfig:
    labels_uri: str | None = None
    target: str = DEFAULT_TARGET
    recent_requests: int = DEFAULT_RECENT
    flush_interval: float = DEFAULT_FLUSH
    pod: str = "server"

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, capture_sink: str | None = None, pod: str = "server"
    ) -> FeedbackConfig:
        e = os.environ if env is None else env
        uri = e.get(ENV_LABELS_URI) or (capture_sink.rstrip("/") + "/_labels/" if capture_sink else None)
        try:
            recent = int(e.get(ENV_RECENT, DEFAULT_RECENT))
            flush = float(e.get(ENV_FLUSH, DEFAULT_FLUSH))
        except ValueError as exc:
            raise ValueError(f"{ENV_RECENT} / {ENV_FLUSH}: not a number: {exc}") from None
        if recent < 0 or not flush > 0:
            raise ValueError(f"{ENV_RECENT} must be >= 0 and {ENV_FLUSH} > 0")
        target = e.get(ENV_TARGET) or DEFAULT_TARGET
        if target in ("id", "version", "prediction", "timestamp"):
            raise ValueError(f"{ENV_TARGET}: {target!r} is a reserved column of the label files")
        return cls(uri, target, recent, flush, pod)


# --- the model's view of a label ------------------------------------------------------------------------
@dataclass(frozen=True)
class LabelSpace:
    task: str  # classification | regression
    classes: tuple[str, ...] | None  # str forms of the class labels, when known
    integer_labels: bool  # the model's label output is an integer tensor

    @classmethod
    def of(cls, model: LoadedModel) -> LabelSpace:
        classes = None
        p = model.profile
        if p is not None and p.prediction is not None and p.prediction.kind == "class":
            classes = tuple(str(c) for c in p.prediction.classes)
        integer = bool(model.outputs) and model.outputs[0].datatype.startswith(("INT", "UINT"))
        return cls(model.task, classes, integer)


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def _class(v: Any, space: LabelSpace, what: str, index: int) -> tuple[str, Any]:
    """(str form, value in the model's label type) of a class label, or FeedbackError."""
    if isinstance(v, bool) or v is None or isinstance(v, dict | list):
        raise FeedbackError(
            422,
            f"items[{index}].{what}: a class label must be a string or an integer, got {type(v).__name__}",
            index,
        )
    if isinstance(v, float):
        if not v.is_integer():
            raise FeedbackError(
                422,
                f"items[{index}].{what}: {v!r} is not a class label of this "
                "classifier (a number with a fraction; is this a regression value?)",
                index,
            )
        v = int(v)
    key = str(v)
    if space.classes is not None and key not in space.classes:
        raise FeedbackError(
            422,
            f"items[{index}].{what}: {key[:100]!r} is not a class label of this model "
            f"(classLabels: {list(space.classes)[:20]})",
            index,
        )
    if space.integer_labels:
        try:
            return key, int(key)
        except ValueError:
            raise FeedbackError(
                422,
                f"items[{index}].{what}: {key[:100]!r} is not an integer class label of this model",
                index,
            ) from None
    return key, key


def _foreign_class(v: Any, what: str, index: int) -> tuple[str, Any]:
    """(str form, value) of a class label of ANOTHER version of the model: the Service sends feedback to
    any replica, also one of the stable version for an item the canary answered, and this replica knows
    only its own version's class labels, so only the label's type is checked."""
    if isinstance(v, bool) or v is None or isinstance(v, dict | list):
        raise FeedbackError(
            422,
            f"items[{index}].{what}: a class label must be a string or an integer, got {type(v).__name__}",
            index,
        )
    if isinstance(v, float):
        if not v.is_integer():
            raise FeedbackError(
                422,
                f"items[{index}].{what}: {v!r} is not a class label (a number with a "
                "fraction; is this a regression value?)",
                index,
            )
        v = int(v)
    return str(v), v


def _class_fields(
    it: dict[str, Any], space: LabelSpace, i: int, foreign: bool
) -> tuple[str, Any, str | None]:
    """(truth, raw truth, prediction) of a classifier's item; ``foreign``: it names another version."""

    def check(v: Any, what: str) -> tuple[str, Any]:
        return _foreign_class(v, what, i) if foreign else _class(v, space, what, i)

    truth, raw_truth = check(it["truth"], "truth")
    pred = check(it["prediction"], "prediction")[0] if it.get("prediction") is not None else None
    return truth, raw_truth, pred


def parse_items(body: bytes, space: LabelSpace, own_version: str | None = None) -> list[Item]:
    """The feedback items of a request body, or FeedbackError naming the first bad one. ``own_version``:
    this replica's version; an item naming another version gets its class labels' types checked only."""
    if not body.strip():
        raise FeedbackError(400, 'empty body: send an item {"id", "truth"} or a list of items')
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise FeedbackError(400, f"body is not JSON: {exc}") from None
    if isinstance(doc, dict) and "items" in doc:
        doc = doc["items"]
    raw = [doc] if isinstance(doc, dict) else doc
    if not isinstance(raw, list):
        raise FeedbackError(400, 'body must be an item object, a list of items or {"items": [...]}')
    if not raw:
        raise FeedbackError(400, "no items: the list is empty")
    if len(raw) > MAX_ITEMS:
        raise FeedbackError(413, f"{len(raw)} items in one request; at most {MAX_ITEMS}")
    return [_item(i, it, space, own_version) for i, it in enumerate(raw)]


def _item(i: int, it: Any, space: LabelSpace, own_version: str | None = None) -> Item:
    if not isinstance(it, dict):
        raise FeedbackError(
            422, f"items[{i}]: must be an object with id and truth, got {type(it).__name__}", i
        )
    unknown = sorted(set(it) - {"id", "truth", "version", "prediction"})
    if unknown:
        raise FeedbackError(
            422, f"items[{i}]: unknown field(s) {unknown[:5]}; allowed: id, truth, version, prediction", i
        )
    rid = it.get("id")
    if not isinstance(rid, str) or not rid or len(rid) > MAX_ID:
        raise FeedbackError(
            422,
            f"items[{i}].id: required, a non-empty string of at most {MAX_ID} "
            "characters (the id of the infer response)",
            i,
        )
    if "truth" not in it or it["truth"] is None:
        raise FeedbackError(422, f"items[{i}].truth: required (the true class label or value)", i)
    version = it.get("version")
    if version is not None:
        version = str(version) if isinstance(version, int) and not isinstance(version, bool) else version
        if not isinstance(version, str) or not _VERSION.match(version):
            raise FeedbackError(
                422,
                f"items[{i}].version: must be the model_version of the infer response "
                f"(a positive integer), got {str(version)[:50]!r}",
                i,
            )
    truth: str | float
    pred: str | float | None = None
    if space.task == "regression":
        num = _number(it["truth"])
        if num is None:
            raise FeedbackError(
                422,
                f"items[{i}].truth: this model is a regressor: truth must be a finite "
                f"number, got {type(it['truth']).__name__} {str(it['truth'])[:50]!r}",
                i,
            )
        truth, raw_truth = num, num
        if it.get("prediction") is not None:
            pred = _number(it["prediction"])
            if pred is None:
                raise FeedbackError(
                    422, f"items[{i}].prediction: this model is a regressor: must be a finite number", i
                )
    else:
        foreign = version is not None and own_version is not None and version != own_version
        truth, raw_truth, pred = _class_fields(it, space, i, foreign)
    return Item(rid, truth, raw_truth, version, pred)


# --- recent predictions of this replica --------------------------------------------------------------------
class RecentPredictions:
    """request id -> (rows, first output) of the last ``capacity`` requests this replica answered.

    O(1) per request on the request path (a reference to the output array, no per-row work); a row id
    ``<request id>:<row>`` (docs/data-contract.md) is resolved by splitting at the last colon.
    """

    def __init__(self, version: str, capacity: int) -> None:
        self.version, self.capacity = version, capacity
        self.entries: OrderedDict[str, tuple[int, np.ndarray]] = OrderedDict()

    def record(self, request_id: str, outputs: list[np.ndarray], rows: int) -> None:
        if self.capacity <= 0 or not outputs:
            return
        self.entries[request_id] = (rows, outputs[0])
        if len(self.entries) > self.capacity:
            self.entries.popitem(last=False)

    def resolve(self, row_id: str, task: str) -> str | float | None:
        hit = self.entries.get(row_id)
        row = 0
        if hit is None or hit[0] != 1:
            rid, _, idx = row_id.rpartition(":")
            hit = self.entries.get(rid) if rid and idx.isdigit() else None
            if hit is None:
                return None
            row = int(idx)
        rows, out = hit
        if row >= rows:
            return None
        v = np.asarray(out).reshape(rows, -1)[row, 0]
        if task == "regression":
            return float(v)
        return v.decode() if isinstance(v, bytes) else str(v.item() if hasattr(v, "item") else v)


# --- counters and the label sink ----------------------------------------------------------------------
@dataclass
class Counts:
    confusion: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (version, truth, pred)
    labels: dict[str, int] = field(default_factory=dict)  # version -> labelled predictions
    abs_err: dict[str, float] = field(default_factory=dict)
    sq_err: dict[str, float] = field(default_factory=dict)
    unresolved: int = 0
    rejected: int = 0


class Feedback:
    """The endpoint's state: recent predictions, counters (a prometheus_client Collector), label buffer."""

    def __init__(
        self, cfg: FeedbackConfig, model: str, version: str, service: str, sink: Sink | None = None
    ) -> None:
        self.cfg, self.model, self.version, self.service = cfg, model, version, service
        self.recent = RecentPredictions(version, cfg.recent_requests)
        self.counts = Counts(labels={version: 0})
        self.sink = sink
        self.buffer: list[LabelRow] = []
        self.written = self.dropped = 0
        self.sink_up = True
        self._seq = 0
        self._started = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        self._task: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None

    # -- request path ------------------------------------------------------------------------------
    def handle(self, model: LoadedModel, body: bytes) -> tuple[int, dict[str, Any]]:
        """(status, JSON doc) for one feedback request."""
        space = LabelSpace.of(model)
        try:
            items = parse_items(body, space, self.version)
        except FeedbackError as exc:
            self.counts.rejected += 1 if exc.index is not None else 0
            return exc.status, exc.doc()
        accepted = unresolved = 0
        now = time.time()
        c = self.counts
        for it in items:
            version, pred = it.version, it.prediction
            if pred is None or version is None:
                resolved = self.recent.resolve(it.id, space.task)
                if resolved is not None and version in (None, self.version):
                    version, pred = self.version, pred if pred is not None else resolved
            if version is not None and version not in c.labels and len(c.labels) >= MAX_VERSIONS:
                version = None
            if pred is None or version is None:
                unresolved += 1
            else:
                accepted += 1
                c.labels[version] = c.labels.get(version, 0) + 1
                if space.task == "regression":
                    err = float(it.truth) - float(pred)
                    c.abs_err[version] = c.abs_err.get(version, 0.0) + abs(err)
                    c.sq_err[version] = c.sq_err.get(version, 0.0) + err * err
                else:
                    key = (version, str(it.truth), str(pred))
                    if (
                        space.classes is None
                        and key not in c.confusion
                        and len(c.confusion) >= MAX_FREE_CLASSES * 4
                    ):
                        accepted, unresolved = accepted - 1, unresolved + 1
                        c.labels[version] -= 1
                        continue
                    c.confusion[key] = c.confusion.get(key, 0) + 1
            self._buffer(now, it, version, pred)
        c.unresolved += unresolved
        return 200, {
            "accepted": accepted,
            "unresolved": unresolved,
            "unknownIds": unresolved,
            "items": len(items),
            "model_name": self.model,
            "model_version": self.version,
        }

    def _buffer(self, ts: float, it: Item, version: str | None, pred: Any) -> None:
        if self.sink is None:
            return
        if len(self.buffer) >= MAX_BUFFERED:
            self.dropped += 1
            return
        self.buffer.append((ts, it.id, it.raw_truth, version, pred))

    # -- label sink -------------------------------------------------------------------------------
    def start(self) -> None:
        if self.sink is not None:
            self._lock = asyncio.Lock()
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.flush_interval)
            await self.flush()

    async def flush(self) -> bool:
        if self.sink is None or not self.buffer:
            return True
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            rows, self.buffer = self.buffer, []
            try:
                await asyncio.get_running_loop().run_in_executor(None, self._write, rows)
            except _Unwritten as exc:
                if self.sink_up:
                    log.warning(
                        "feedback label sink write failed; labels stay buffered up to the limit",
                        extra={"fields": {"error": str(exc.__cause__)[:300]}},
                    )
                self.sink_up = False
                room = MAX_BUFFERED - len(self.buffer)
                self.dropped += max(0, len(exc.rows) - room)
                self.buffer[:0] = exc.rows[:room]
                return False
            except Exception:  # a bug, not the sink: drop these rows rather than stop writing labels
                self.dropped += len(rows)
                log.exception(
                    "feedback labels dropped: writing them failed", extra={"fields": {"rows": len(rows)}}
                )
                return False
            self.sink_up = True
            return True

    def _write(self, rows: list[LabelRow]) -> None:
        """One label file per kind of truth (int, float, str, bool): a replica also takes feedback for the
        versions beside it, whose labels may be of another type (class indices here, class names there),
        and a Parquet column has one type. A group that cannot be encoded is dropped and logged, never
        kept: it would fail again on every flush and hold back the labels behind it. A sink failure raises
        ``_Unwritten`` with the rows not yet written (the caller keeps them for the next flush)."""
        assert self.sink is not None
        groups: dict[str, list[LabelRow]] = {}
        for r in rows:
            groups.setdefault(type(r[2]).__name__, []).append(r)
        pending = list(groups.values())
        while pending:
            group = pending[0]
            try:
                data = encode_labels(group, self.cfg.target)
            except (ValueError, TypeError, ArithmeticError) as exc:  # pyarrow's ArrowInvalid is a ValueError
                pending.pop(0)
                self.dropped += len(group)
                log.error(
                    "feedback labels dropped: they cannot be written as a label file",
                    extra={"fields": {"rows": len(group), "error": str(exc)[:300]}},
                )
                continue
            ts = datetime.fromtimestamp(group[0][0], UTC)
            rel = (
                f"model={self.model}/date={ts:%Y-%m-%d}/hour={ts:%H}/"
                f"{self.cfg.pod}-{self._started}-{self._seq + 1:06d}.parquet"
            )
            try:
                self.sink.write(rel, data)
            except Exception as exc:
                raise _Unwritten([r for g in pending for r in g]) from exc
            pending.pop(0)
            self._seq += 1
            self.written += len(group)

    async def close(self, timeout: float = 5.0) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flush(), timeout)
        if self.buffer:
            self.dropped += len(self.buffer)
            log.error(
                "feedback labels not written before shutdown", extra={"fields": {"rows": len(self.buffer)}}
            )
            self.buffer = []

    # -- prometheus_client Collector ---------------------------------------------------------------
    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        scope = list(N.SCOPE_LABELS)
        c = self.counts

        def mv(version: str) -> list[str]:
            return [self.model, version, self.service]

        conf = CounterMetricFamily(
            FEEDBACK_PREDICTIONS,
            "Labelled predictions by true and predicted class.",
            labels=[*scope, LABEL_TRUTH, LABEL_PREDICTED],
        )
        for (v, t, p), n in sorted(c.confusion.items()):
            conf.add_metric([*mv(v), t, p], n)
        yield conf
        lab = CounterMetricFamily(
            FEEDBACK_LABELS,
            "Labelled predictions (feedback items resolved to the version and prediction that answered).",
            labels=scope,
        )
        for v, n in sorted(c.labels.items()):
            lab.add_metric(mv(v), n)
        yield lab
        for name, doc, values in (
            (
                FEEDBACK_ABS_ERROR,
                "Sum of |truth - prediction| of labelled predictions (regression).",
                c.abs_err,
            ),
            (
                FEEDBACK_SQ_ERROR,
                "Sum of (truth - prediction)^2 of labelled predictions (regression).",
                c.sq_err,
            ),
        ):
            fam = CounterMetricFamily(name, doc, labels=scope)
            for v, x in sorted(values.items()):
                fam.add_metric(mv(v), x)
            yield fam
        own = mv(self.version)
        for name, doc, n in (
            (
                FEEDBACK_UNRESOLVED,
                "Feedback items this replica could not tie to a version and prediction "
                "(no echo, not served here recently): left to the batch path.",
                c.unresolved,
            ),
            (FEEDBACK_REJECTED, "Feedback requests refused for a bad item.", c.rejected),
        ):
            fam = CounterMetricFamily(name, doc, labels=scope)
            fam.add_metric(own, n)
            yield fam
        if self.sink is not None:
            rows = CounterMetricFamily(
                FEEDBACK_SINK_ROWS, "Feedback label rows for the label sink.", labels=[*scope, LABEL_RESULT]
            )
            rows.add_metric([*own, "written"], self.written)
            rows.add_metric([*own, "dropped"], self.dropped)
            yield rows
            up = GaugeMetricFamily(
                FEEDBACK_SINK_UP, "0 after a failed label write, 1 after a good one.", labels=scope
            )
            up.add_metric(own, 1.0 if self.sink_up else 0.0)
            yield up


def encode_labels(rows: list[LabelRow], target: str) -> bytes:
    """A label file (docs/data-contract.md): ``id``, the target, and the resolved ``version``,
    ``prediction`` (string) and ``timestamp`` (ignored by the trainer)."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    truths = [r[2] for r in rows]
    table = pa.table(
        {
            "id": pa.array([r[1] for r in rows], pa.string()),
            target: pa.array(truths),
            "version": pa.array([r[3] for r in rows], pa.string()),
            "prediction": pa.array([None if r[4] is None else str(r[4]) for r in rows], pa.string()),
            "timestamp": pa.array(
                [datetime.fromtimestamp(r[0], UTC) for r in rows], pa.timestamp("ms", "UTC")
            ),
        }
    )
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def start_feedback(cfg: Any, handlers: Any, metrics: Any, env: Mapping[str, str] | None = None) -> Feedback:
    """The server's Feedback (always on: counters; a label sink when a labels URI is known), registered on
    the metrics and the handlers. ``cfg`` is the ServerConfig."""
    import socket

    e = os.environ if env is None else env
    capture = getattr(cfg, "capture", None)
    pod = (
        capture.pod
        if capture is not None
        else (e.get("ONNXOPS_POD_NAME") or e.get("HOSTNAME") or socket.gethostname() or "server")
    )
    if capture is not None and ENV_FLUSH not in e:  # labels are written as often as the captured rows
        e = {**e, ENV_FLUSH: str(capture.flush_interval)}
    try:
        fcfg = FeedbackConfig.from_env(e, capture.sink_uri if capture is not None else None, pod)
    except ValueError as exc:
        log.error("feedback settings ignored", extra={"fields": {"error": str(exc)}})
        fcfg = FeedbackConfig(pod=pod)
    sink = None
    if fcfg.labels_uri:
        from .sink import open_sink

        sink = open_sink(fcfg.labels_uri)
    fb = Feedback(fcfg, cfg.model_name, cfg.model_version, cfg.inference_service, sink)
    metrics.registry.register(fb)
    handlers.feedback = fb
    fb.start()
    return fb
