"""Trainer failures: each has the termination-message reason and the process exit code."""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_INVALID = 2  # bad spec or bad input data
EXIT_GATE = 3  # a promotion gate was not met
EXIT_PARITY = 4  # ONNX Runtime and scikit-learn disagree
EXIT_STORAGE = 5  # storage unreachable, timed out, 5xx, denied: transient, the Job retries
EXIT_NOT_FOUND = 6  # data or artifact not found, not the pinned sha256, bundle already exists: final
EXIT_LABELS_PENDING = 7  # fromServing: fewer labelled rows than minRows yet; labels arrive late: retried

# Exit codes no retry can fix: the training and verification Jobs' podFailurePolicy fails the Job at once
# on these (builders/job.py); every other non-zero exit (1 crash, 5 storage, 7 labels pending, signals) is
# retried up to backoffLimit, and a pod disrupted by the cluster (DisruptionTarget condition) is retried
# uncounted.
FINAL_EXIT_CODES = (EXIT_INVALID, EXIT_GATE, EXIT_PARITY, EXIT_NOT_FOUND)


class TrainerError(Exception):
    reason = "TrainingFailed"
    exit_code = EXIT_INVALID

    def __init__(self, message: str, *, extra: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}


class InvalidSpec(TrainerError):
    reason = "InvalidSpec"


class InvalidData(TrainerError):
    reason = "InvalidData"


class TrainingFailed(TrainerError):
    reason = "TrainingFailed"


class DataError(TrainerError):
    reason = "DataError"
    exit_code = EXIT_STORAGE


class DataNotFound(DataError):
    """The data set does not exist or is not the pinned one: reading it again gives the same answer."""

    exit_code = EXIT_NOT_FOUND


class StorageFailed(TrainerError):
    reason = "StorageError"
    exit_code = EXIT_STORAGE


class AlreadyExists(StorageFailed):
    reason = "AlreadyExists"
    exit_code = EXIT_NOT_FOUND


class LabelsPending(TrainerError):
    """dataset.fromServing: fewer captured rows of the window have a label than ``minRows``. Ground truth
    arrives after the answer (seconds to hours), and every attempt reads the same window (it ends at the
    TrainingJob's creation), so a retry after the Job's backoff can find the labels that were still on
    their way."""

    reason = "NotEnoughLabels"
    exit_code = EXIT_LABELS_PENDING


class GateNotMet(TrainerError):
    reason = "GateNotMet"
    exit_code = EXIT_GATE


class ParityFailed(TrainerError):
    reason = "ParityFailed"
    exit_code = EXIT_PARITY


class ExportFailed(TrainerError):
    reason = "ExportFailed"
