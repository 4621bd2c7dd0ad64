"""Once per change: a blocked deletion retries every few seconds (kopf.TemporaryError), and kopf logs each
retry as an ERROR and posts it as an Event. The ModelVersion's DeletionBlocked condition and our own Event
already say it once; this filter lets kopf's line through only when its message for that object changes."""

from __future__ import annotations

import logging
from collections import OrderedDict

MARKER = "deletion waits:"
MAX_OBJECTS = 1024


class RepeatFilter(logging.Filter):
    """Drop a kopf object-log record that repeats the last ``deletion waits`` message of the same object."""

    def __init__(self, marker: str = MARKER) -> None:
        super().__init__()
        self.marker = marker
        self.last: OrderedDict[tuple[str, str, str], str] = OrderedDict()

    def filter(self, record: logging.LogRecord) -> bool:
        ref = getattr(record, "k8s_ref", None)
        if not isinstance(ref, dict):
            return True
        key = (str(ref.get("kind")), str(ref.get("namespace")), str(ref.get("name")))
        msg = record.getMessage()
        if self.marker not in msg:
            return True
        if self.last.get(key) == msg:
            self.last.move_to_end(key)
            return False
        self.last[key] = msg
        self.last.move_to_end(key)
        while len(self.last) > MAX_OBJECTS:
            self.last.popitem(last=False)
        return True


def install(logger_name: str = "kopf.objects") -> RepeatFilter:
    """Add the filter to kopf's object logger once (startup may run again in one process: tests)."""
    logger = logging.getLogger(logger_name)
    for f in logger.filters:
        if isinstance(f, RepeatFilter):
            return f
    f = RepeatFilter()
    logger.addFilter(f)
    return f
