"""file:// and pvc:// storage: plain files, bundles committed by one directory rename."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from pathlib import Path

from .errors import AlreadyExists, NotFound, StorageError
from .uri import redact


def read_local(path: Path, uri: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"{redact(uri)}: no such file ({path})") from None
    except IsADirectoryError:
        raise StorageError(f"{redact(uri)}: is a directory, not a file") from None
    except OSError as e:
        raise StorageError(f"{redact(uri)}: cannot read: {e.strerror or e}") from None


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be fsynced
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def put_bundle_local(dest: Path, uri: str, files: dict[str, bytes]) -> None:
    """Write ``files`` into the new directory ``dest`` atomically.

    The files go into a hidden sibling staging directory, are fsynced, and the staging directory is renamed
    to ``dest`` in one ``rename(2)``: a reader sees either no bundle or the whole bundle. An existing ``dest``
    (even an empty one) is never replaced: AlreadyExists. Two writers racing for the same ``dest``: one
    rename wins, the other fails with ENOTEMPTY/EEXIST and gets AlreadyExists.
    """
    if dest.exists():
        raise AlreadyExists(f"{uri} already exists; bundles are never overwritten")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StorageError(f"{redact(uri)}: cannot create {dest.parent}: {e.strerror or e}") from None
    staging = dest.parent / f".{dest.name}.staging-{uuid.uuid4().hex[:12]}"
    try:
        staging.mkdir()
        for name, data in files.items():
            _write_synced(staging / name, data)
        _fsync_dir(staging)
        if dest.exists():
            raise AlreadyExists(f"{uri} already exists; bundles are never overwritten")
        try:
            os.rename(staging, dest)
        except OSError as e:
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise AlreadyExists(f"{uri} already exists; bundles are never overwritten") from None
            raise
        _fsync_dir(dest.parent)
    except StorageError:
        raise
    except OSError as e:
        raise StorageError(f"{redact(uri)}: cannot write bundle: {e.strerror or e}") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
