"""Payload capture: what the server answered, as Parquet files for retraining (docs/data-contract.md).

The request path only appends a reference to the request's arrays to a bounded in-memory queue
(``Capture.record``, O(1), no copy, no I/O). A background task turns the queue into Arrow tables and writes
them through a ``Sink`` from a worker thread, every ``flush_interval`` or as soon as a file's worth of rows
is queued. When the queue holds ``queue_rows`` rows (the sink is slow or down) new rows are dropped and
counted; a request is never delayed or failed by the capture. A failed write puts its rows back at the
head of the queue (they are retried at the next flush, and the queue bound still holds). On shutdown the
server flushes what it holds within ``flush_timeout`` seconds; what cannot be written is counted as
dropped with ``reason="shutdown"``.

Files: ``model=<m>/version=<v>/date=YYYY-MM-DD/hour=HH/<pod>-<seq>.parquet`` under the sink, hive
partitioned, one row per served row (``build_table`` is the row schema).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import numpy as np
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from onnxops.drift import names as N

from .capture_config import CaptureConfig
from .capture_rows import (
    META_COLUMNS,
    OUTPUT_COLUMNS,
    PARTITION_KEYS,
    RESERVED,
    Chunk,
    Entry,
    build_table,
    compact,
    encode_parquet,
    feature_columns,
    partition_path,
    row_id,
)
from .model import LoadedModel
from .sink import Sink

log = logging.getLogger("onnxops.serving")

__all__ = [
    "META_COLUMNS",
    "OUTPUT_COLUMNS",
    "PARTITION_KEYS",
    "RESERVED",
    "Capture",
    "Chunk",
    "Entry",
    "build_table",
    "compact",
    "encode_parquet",
    "feature_columns",
    "new_request_id",
    "partition_path",
    "row_id",
]

# Metric families (exposed on /metrics next to the server's own; docs/metrics.md "Payload capture").
# (the names are defined once in onnxops.drift.names: the operator reads them for CaptureHealthy)
PAYLOAD_ROWS_CAPTURED = N.PAYLOAD_ROWS_CAPTURED  # counter {model, version}
PAYLOAD_ROWS_WRITTEN = N.PAYLOAD_ROWS_WRITTEN  # counter {model, version}
PAYLOAD_BYTES_WRITTEN = N.PAYLOAD_BYTES_WRITTEN  # counter {model, version}
PAYLOAD_FILES_WRITTEN = N.PAYLOAD_FILES_WRITTEN  # counter {model, version}
PAYLOAD_ROWS_DROPPED = N.PAYLOAD_ROWS_DROPPED  # counter {model, version, reason}
PAYLOAD_WRITE_ERRORS = N.PAYLOAD_WRITE_ERRORS  # counter {model, version}
PAYLOAD_QUEUE_ROWS = N.PAYLOAD_QUEUE_ROWS  # gauge {model, version}
PAYLOAD_SINK_UP = N.PAYLOAD_SINK_UP  # gauge {model, version}
LABEL_REASON = "reason"
DROP_QUEUE_FULL, DROP_SHUTDOWN, DROP_UNENCODABLE = "queue_full", "shutdown", "unencodable"
DROP_REASONS = (DROP_QUEUE_FULL, DROP_SHUTDOWN, DROP_UNENCODABLE)

CHUNK_ROWS = 4096  # requests are joined into one Arrow table every CHUNK_ROWS rows or CHUNK_REQUESTS requests
CHUNK_REQUESTS = 256


def new_request_id() -> str:
    """32 random hex digits (a uuid4's entropy without building a UUID object)."""
    return os.urandom(16).hex()


def _hour(ts: float) -> int:
    return int(ts // 3600)


class Capture:
    """The queue, its background writer and its metrics (a prometheus_client Collector)."""

    def __init__(
        self,
        cfg: CaptureConfig,
        model: str,
        version: str,
        sink: Sink,
        *,
        random_fn: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cfg, self.model, self.version, self.sink = cfg, model, version, sink
        self.queue: deque[Chunk] = deque()
        self.pending: list[Entry] = []  # the newest requests, joined into a Chunk every CHUNK_ROWS rows
        self._pending_rows = 0
        self._pending_hour = -1
        self._chunk_rows = min(CHUNK_ROWS, cfg.max_rows_per_file)
        self.queued_rows = 0  # pending + queued chunks
        self.captured = self.written = self.bytes = self.files = self.errors = 0
        self.dropped = dict.fromkeys(DROP_REASONS, 0)
        self.sink_up = True
        self._random = random_fn
        self._clock = clock
        self._seq = 0
        self._started = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None
        self._closing = False
        self._inflight = 0  # rows taken off the queue by a flush and not yet written or queued again

    # -- request path ----------------------------------------------------------------------------
    def record(
        self,
        model: LoadedModel,
        request_id: str,
        feeds: dict[str, np.ndarray],
        outputs: list[np.ndarray],
        rows: int,
    ) -> None:
        """Queue one answered request (sampled); never blocks, never raises for a full queue."""
        if self.cfg.sample_rate < 1.0 and self._random() >= self.cfg.sample_rate:
            return
        if self.queued_rows + rows > self.cfg.queue_rows:
            self.dropped[DROP_QUEUE_FULL] += rows
            return
        ts = self._clock()
        hour = int(ts // 3600)
        if hour != self._pending_hour:
            self._compact()
            self._pending_hour = hour
        self.pending.append(Entry(ts, request_id, model, feeds, outputs, rows))
        self._pending_rows += rows
        self.queued_rows += rows
        self.captured += rows
        if self._pending_rows >= self._chunk_rows or len(self.pending) >= CHUNK_REQUESTS:
            self._compact()
            if self.queued_rows >= self.cfg.max_rows_per_file and self._wake is not None:
                self._wake.set()

    def _compact(self) -> None:
        """Join the pending requests into one Arrow table: a few hundred rows at a time on the event loop,
        so that the writer thread only concatenates tables and encodes Parquet (C++, without the GIL)."""
        if not self.pending:
            return
        pending, rows = self.pending, self._pending_rows
        self.pending = []
        self._pending_rows = 0
        try:  # never lets an exception reach the request that triggered the compaction
            chunk = compact(pending)
            table = build_table([chunk])
        except Exception as exc:
            if not self.dropped[DROP_UNENCODABLE]:
                log.error(
                    "captured rows cannot be encoded; they are dropped",
                    extra={"fields": {"error": str(exc)[:300]}},
                )
            self.dropped[DROP_UNENCODABLE] += rows
            self.queued_rows -= rows
            return
        self.queue.append(chunk._replace(feeds={}, outputs=[], table=table))

    # -- background writer -----------------------------------------------------------------------
    def start(self) -> None:
        import pyarrow.compute
        import pyarrow.parquet  # imported once here, not in the first flush

        del pyarrow

        self._wake, self._lock = asyncio.Event(), asyncio.Lock()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        assert self._wake is not None
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.cfg.flush_interval)
            self._wake.clear()
            if not self._closing:
                await self.flush()

    def _take(self) -> Iterator[list[Chunk]]:
        """Pop the queue in file-sized groups of one hour partition each."""
        self._compact()
        while self.queue:
            group: list[Chunk] = []
            n, hour = 0, _hour(self.queue[0].ts[0])
            while (
                self.queue
                and _hour(self.queue[0].ts[0]) == hour
                and (not group or n + self.queue[0].rows <= self.cfg.max_rows_per_file)
            ):
                c = self.queue.popleft()
                group.append(c)
                n += c.rows
            self.queued_rows -= n
            yield group

    async def flush(self) -> bool:
        """Write everything queued now; False when a write failed (its rows are queued again)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            loop = asyncio.get_running_loop()
            groups = list(self._take())
            self._inflight = sum(c.rows for g in groups for c in g)
            for i, group in enumerate(groups):
                try:
                    await loop.run_in_executor(None, self._write, group)
                except Exception as exc:
                    self._inflight = 0
                    self._failed(exc, [c for g in groups[i:] for c in g])
                    return False
                self._inflight -= sum(c.rows for c in group)
            return True

    def _write(self, group: list[Chunk]) -> None:
        """Worker thread: encode one group and hand it to the sink."""
        try:
            import pyarrow as pa

            tables = [c.table if c.table is not None else build_table([c]) for c in group]
            data = encode_parquet(tables[0] if len(tables) == 1 else pa.concat_tables(tables))
        except Exception:
            log.exception("captured rows cannot be encoded; they are dropped")
            self.dropped[DROP_UNENCODABLE] += sum(c.rows for c in group)
            return
        part = partition_path(self.model, self.version, float(group[0].ts[0]))
        rel = f"{part}/{self.cfg.pod}-{self._started}-{self._seq + 1:06d}.parquet"
        self.sink.write(rel, data)
        self._seq += 1
        self.written += sum(c.rows for c in group)
        self.bytes += len(data)
        self.files += 1
        if not self.sink_up:
            log.info("capture sink writable again", extra={"fields": {"sink": self.sink.uri}})
        self.sink_up = True

    def _failed(self, exc: Exception, unwritten: list[Chunk]) -> None:
        self.errors += 1
        if self.sink_up:
            log.warning(
                "capture sink write failed; rows stay queued up to the limit and are retried",
                extra={"fields": {"error": str(exc)[:300]}},
            )
        self.sink_up = False
        room = self.cfg.queue_rows - self.queued_rows
        keep: list[Chunk] = []
        for e in unwritten:  # oldest first, as long as they fit beside what arrived meanwhile
            if e.rows <= room:
                keep.append(e)
                room -= e.rows
            else:
                self.dropped[DROP_QUEUE_FULL] += e.rows
        self.queue.extendleft(reversed(keep))
        self.queued_rows += sum(e.rows for e in keep)

    async def close(self, timeout: float | None = None) -> None:
        """Stop the timer and flush what is queued within ``timeout`` seconds (SIGTERM)."""
        limit = self.cfg.flush_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        self._closing = True
        if self._task is not None and self._wake is not None:
            self._wake.set()  # the timer task ends after a write in progress, never in the middle of one
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._task), limit)
            self._task.cancel()
            self._task = None
        with contextlib.suppress(TimeoutError):
            while (self.queue or self.pending) and time.monotonic() < deadline:
                if not await asyncio.wait_for(self.flush(), max(0.0, deadline - time.monotonic())):
                    await asyncio.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        lost = self.queued_rows + self._inflight
        if lost:
            self.dropped[DROP_SHUTDOWN] += lost
            log.error("captured rows not written before shutdown", extra={"fields": {"rows": lost}})
            self.queue.clear()
            self.pending = []
            self.queued_rows = self._inflight = self._pending_rows = 0

    # -- prometheus_client Collector ---------------------------------------------------------------
    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        mv, labels = [self.model, self.version], [N.LABEL_MODEL, N.LABEL_VERSION]
        for name, doc, value in (
            (PAYLOAD_ROWS_CAPTURED, "Rows sampled for capture and queued.", self.captured),
            (PAYLOAD_ROWS_WRITTEN, "Captured rows written to the sink.", self.written),
            (PAYLOAD_BYTES_WRITTEN, "Parquet bytes written to the sink.", self.bytes),
            (PAYLOAD_FILES_WRITTEN, "Parquet files written to the sink.", self.files),
            (PAYLOAD_WRITE_ERRORS, "Failed writes to the sink.", self.errors),
        ):
            c = CounterMetricFamily(name, doc, labels=labels)
            c.add_metric(mv, value)
            yield c
        d = CounterMetricFamily(
            PAYLOAD_ROWS_DROPPED, "Captured rows dropped, by reason.", labels=[*labels, LABEL_REASON]
        )
        for reason, n in self.dropped.items():
            d.add_metric([*mv, reason], n)
        yield d
        q = GaugeMetricFamily(PAYLOAD_QUEUE_ROWS, "Captured rows waiting in memory.", labels=labels)
        q.add_metric(mv, self.queued_rows)
        yield q
        up = GaugeMetricFamily(
            PAYLOAD_SINK_UP, "0 after a failed write to the sink, 1 after a good one.", labels=labels
        )
        up.add_metric(mv, 1.0 if self.sink_up else 0.0)
        yield up
