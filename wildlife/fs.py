"""One file layer for local paths and ``s3://`` URIs.

Everything in Odin names files by URI and goes through these functions, so a stage runs unchanged on a
laptop folder or an S3 prefix. pyarrow's filesystems do the real work; local paths take Python's own
``open`` on the hot path because it is several times cheaper per small read than pyarrow's local handle.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from dataclasses import dataclass
from typing import IO, Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

_UMASK = os.umask(0)
os.umask(_UMASK)


def is_local(uri: str | bytes) -> bool:
    if isinstance(uri, bytes):  # a local path whose name is not valid UTF-8
        return True
    return "://" not in uri or uri.startswith("file://")


def local_path(uri: str | bytes) -> str | bytes:
    if isinstance(uri, bytes):
        return uri
    return uri[len("file://"):] if uri.startswith("file://") else uri


def join(uri: str, *parts: str) -> str:
    out = uri.rstrip("/")
    for part in parts:
        out = f"{out}/{part.strip('/')}"
    return out


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    if is_local(uri):
        return pafs.LocalFileSystem(), os.path.abspath(local_path(uri))
    return pafs.FileSystem.from_uri(uri)


@dataclass(frozen=True)
class Entry:
    """One file found under an input URI. ``error`` is set when it exists but cannot be used as a file."""

    uri: str
    relpath: str
    size: int
    mtime: float | None
    error: str | None = None


def list_files(uri: str) -> list[Entry]:
    """Every file below ``uri``, recursively, sorted by relative path (the documented input order)."""
    entries = _list_local(local_path(uri)) if is_local(uri) else _list_remote(uri)
    return sorted(entries, key=lambda e: e.relpath)


def _list_local(root: str) -> list[Entry]:
    if not os.path.isdir(root):
        raise FileNotFoundError(f"input folder {root!r} does not exist or is not a folder")
    root = os.path.normpath(root)
    prefix = len(root) + 1
    found: list[Entry] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                children = list(it)
        except OSError as exc:
            found.append(Entry(folder, folder[prefix:], 0, None, f"folder cannot be read: {exc.strerror}"))
            continue
        for child in children:
            rel = child.path[prefix:]
            try:
                st = child.stat(follow_symlinks=True)
            except OSError as exc:
                found.append(Entry(child.path, rel, 0, None, f"cannot stat file: {exc.strerror}"))
                continue
            if stat.S_ISDIR(st.st_mode):
                stack.append(child.path)
            elif stat.S_ISREG(st.st_mode):
                found.append(Entry(child.path, rel, st.st_size, st.st_mtime))
            else:
                found.append(Entry(child.path, rel, 0, st.st_mtime, "not a regular file"))
    return found


def _list_remote(uri: str) -> list[Entry]:
    fs, base = pafs.FileSystem.from_uri(uri)
    scheme = uri.split("://", 1)[0]
    found = []
    for info in fs.get_file_info(pafs.FileSelector(base, recursive=True)):
        if info.type != pafs.FileType.File:
            continue
        rel = info.path[len(base):].lstrip("/")
        mtime = info.mtime.timestamp() if info.mtime else None
        found.append(Entry(f"{scheme}://{info.path}", rel, info.size or 0, mtime))
    return found


def open_read(uri: str | bytes) -> IO[bytes]:
    """A binary reader that supports ``seek`` and ``read``."""
    if is_local(uri):
        return open(local_path(uri), "rb")
    fs, path = filesystem(uri)
    return fs.open_input_file(path)


def exists(uri: str) -> bool:
    if is_local(uri):
        return os.path.exists(local_path(uri))
    fs, path = filesystem(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def makedirs(uri: str) -> None:
    if is_local(uri):
        os.makedirs(local_path(uri), exist_ok=True)
    # object stores have no folders


def read_bytes(uri: str | bytes) -> bytes:
    with open_read(uri) as f:
        return f.read()


def write_bytes(uri: str, data: bytes) -> None:
    """Write all of ``data`` or nothing: a reader never sees half a file, even after kill -9."""
    if is_local(uri):
        path = local_path(uri)
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are ordinary files
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return
    fs, path = filesystem(uri)
    with fs.open_output_stream(path) as f:  # S3 PUTs are atomic already
        f.write(data)


def read_json(uri: str) -> Any:
    return json.loads(read_bytes(uri))


def write_json(uri: str, obj: Any) -> None:
    write_bytes(uri, json.dumps(obj, indent=2, default=str).encode())


def write_table(table: pa.Table, uri: str) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    write_bytes(uri, sink.getvalue().to_pybytes())


def read_table(uri: str) -> pa.Table:
    fs, path = filesystem(uri)
    return pq.read_table(path, filesystem=fs)


def list_names(uri: str) -> list[str]:
    """Names directly inside a folder URI, or [] when it does not exist."""
    fs, path = filesystem(uri)
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    return sorted(os.path.basename(i.path) for i in infos)
