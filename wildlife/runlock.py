"""One run at a time per output folder, and the up-front check that the output can be written at all.

``<output>/_run/lock`` names its holder (process, host, start time). Locally it is held with ``flock``, so
the kernel lets go when the holder ends, however it ends (kill -9 included): a lock is never left stuck. On
object stores (``s3://``) there is no such thing: the lock is an object, taken over when its holder was on
this host and is gone; any other holder is reported, and the object must be deleted by hand if no run is
using it. Two runs starting in the same instant on two hosts can both take it: the S3 lock guards against
the usual mistake (a second command into the same folder), not against a race.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from wildlife import fs
from wildlife.errors import InputError


class OutputBusy(InputError):
    """Another run is writing to this output folder now."""


class OutputNotWritable(InputError):
    """The output folder cannot be written: nothing was started."""


def lock_uri(output_uri: str) -> str:
    return fs.join(output_uri, "_run", "lock")


@contextlib.contextmanager
def output_lock(output_uri: str) -> Iterator[None]:
    """Hold ``<output>/_run/lock`` while a run works there. Raises OutputNotWritable or OutputBusy."""
    holder = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": datetime.now(UTC).isoformat(timespec="seconds")}
    uri = lock_uri(output_uri)
    if not fs.is_local(uri):
        yield from _object_lock(uri, holder)
        return
    path = fs.local_path(uri)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise OutputNotWritable(f"--output {output_uri} cannot be written: {exc.strerror or exc}",
                                "Choose a folder you can write to. Nothing was started.") from exc
    import fcntl  # noqa: PLC0415 - POSIX only, like the lock

    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(output_uri, os.pread(fd, 4096, 0)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the flock


def _object_lock(uri: str, holder: dict[str, Any]) -> Iterator[None]:
    output_uri = uri.rsplit("/_run/", 1)[0]
    if fs.exists(uri):
        raw = fs.read_bytes(uri)
        other = _holder(raw)
        if not (other and other.get("host") == holder["host"] and not _alive(other.get("pid"))):
            raise _busy(output_uri, raw, f"If no run is using it, delete {uri} and try again.")
    try:
        fs.write_json(uri, holder)
    except OSError as exc:
        raise OutputNotWritable(f"--output {output_uri} cannot be written: {exc}",
                                "Check the bucket, prefix and credentials. Nothing was started.") from exc
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            if _holder(fs.read_bytes(uri)) == holder:
                fs.delete(uri)


def _holder(raw: bytes) -> dict[str, Any] | None:
    try:
        found = json.loads(raw)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def _alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (TypeError, ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _busy(output_uri: str, raw: bytes, hint: str | None = None) -> OutputBusy:
    other = _holder(raw) or {}
    who = (f"process {other.get('pid')} on {other.get('host')}, started {other.get('started')}" if other
           else "another process")
    return OutputBusy(f"--output {output_uri} is in use by another run ({who}).",
                      hint or "Wait for it to finish, or choose another --output.")
