"""Trainer failures: each has the termination-message reason and the process exit code."""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_INVALID = 2  # bad spec or bad input data
EXIT_GATE = 3  # a promotion gate was not met
EXIT_PARITY = 4  # ONNX Runtime and scikit-learn disagree
EXIT_STORAGE = 5  # data or artifact storage unreachable, missing, digest mismatch, already exists


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


class StorageFailed(TrainerError):
    reason = "StorageError"
    exit_code = EXIT_STORAGE


class AlreadyExists(StorageFailed):
    reason = "AlreadyExists"


class GateNotMet(TrainerError):
    reason = "GateNotMet"
    exit_code = EXIT_GATE


class ParityFailed(TrainerError):
    reason = "ParityFailed"
    exit_code = EXIT_PARITY


class ExportFailed(TrainerError):
    reason = "ExportFailed"
