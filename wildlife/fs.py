"""One file layer for local paths and ``s3://`` URIs.

Everything in Odin names files by URI and goes through these functions, so a stage runs unchanged on a
laptop folder or an S3 prefix. pyarrow's filesystems do the real work; local paths take Python's own
``open`` on the hot path because it is several times cheaper per small read than pyarrow's local handle.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import urlencode

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
    if uri.startswith("s3://") and "?" not in uri:
        store = s3_store(*(os.environ.get(name) for name in _S3_SETTINGS))
        if store is not None:
            endpoint, region = store
            return pafs.FileSystem.from_uri(f"{uri}?{urlencode({'endpoint_override': endpoint, 'region': region})}")
    return pafs.FileSystem.from_uri(uri)


# the environment variables that choose an S3 endpoint and its region, as boto3 reads them
_S3_SETTINGS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "AWS_PROFILE",
                "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE", "AWS_REGION", "AWS_DEFAULT_REGION")


@functools.cache
def s3_store(*settings: str | None) -> tuple[str, str] | None:
    """The S3-compatible store (MinIO, Ceph, ...) that boto3 is configured to use, as (endpoint URL, region), or
    None for AWS itself. Found exactly as boto3 finds it: ``AWS_ENDPOINT_URL_S3``, then ``AWS_ENDPOINT_URL``,
    then ``endpoint_url`` in the profile's ``services`` section or the profile itself (``~/.aws/config``).
    pyarrow reads the two environment variables itself but not the config file: without this it would look the
    bucket's region up at AWS and read from there. ``settings`` are the values of ``_S3_SETTINGS``: the cache key
    (an environment changed in-process is honoured)."""
    import botocore.session  # noqa: PLC0415 - only for s3:// URIs
    from botocore.configprovider import ConfiguredEndpointProvider  # noqa: PLC0415 - boto3's own lookup (pinned)

    session = botocore.session.Session()
    if session.get_config_variable("ignore_configured_endpoint_urls"):
        return None
    endpoint = ConfiguredEndpointProvider(session.full_config, session.get_scoped_config(), "s3").provide()
    if not endpoint:
        return None
    return endpoint, session.get_config_variable("region") or "us-east-1"  # boto3 signs with us-east-1 too


@dataclass(frozen=True, slots=True)  # slots: a million of them, listing a card, without a dict each
class Entry:
    """One file found under an input URI. ``error`` is set when it exists but cannot be used as a file
    (the row fails); ``skipped`` when it is not input at all (a link, a special or system file: never opened)."""

    uri: str
    relpath: str
    size: int
    mtime: float | None
    error: str | None = None
    skipped: str | None = None


# Files cameras, card readers and desktops leave next to photos: listed as skipped, never read.
SYSTEM_FILES = {".DS_Store": "macOS Finder settings", "Thumbs.db": "Windows thumbnail cache",
                "desktop.ini": "Windows folder settings"}


def system_file(name: str) -> str | None:
    """Why a file name is operating-system metadata rather than a photo, or None."""
    if name.startswith("._"):
        return "macOS AppleDouble metadata (._ file), not a photo"
    if name in SYSTEM_FILES:
        return f"{SYSTEM_FILES[name]} ({name}), not a photo"
    return None


def list_files(uri: str, *, follow_links: bool = False, exclude: tuple[str, ...] = ()) -> list[Entry]:
    """Every file below ``uri``, recursively, sorted by relative path (the documented input order).

    Nothing outside ``uri`` is ever listed: symbolic links that point outside it, dangling links and
    special files (FIFO, socket, device) are entries with ``skipped`` set. A link to a file inside is
    skipped too (the file is read once, under its real path). Links to folders are followed only with
    ``follow_links``, never out of ``uri`` and never round a loop. Folders in ``exclude`` (the run's own
    ``--output`` when it lies inside the input) are not listed at all.
    """
    if is_local(uri):
        entries = _list_local(local_path(uri), follow_links, [local_path(e) for e in exclude if is_local(e)])
    else:
        entries = _list_remote(uri, [e for e in exclude if not is_local(e)])
    return sorted(entries, key=lambda e: e.relpath)


_KINDS = ((stat.S_ISDIR, "folder"), (stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISSOCK, "socket"),
          (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "special file")


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _list_local(root: str, follow_links: bool, exclude: list[str]) -> list[Entry]:
    if not os.path.isdir(root):
        raise FileNotFoundError(f"input folder {root!r} does not exist or is not a folder")
    root = os.path.normpath(root)
    real_root = os.path.realpath(root)
    excluded = {os.path.realpath(e) for e in exclude}
    prefix = len(root) + 1
    found: list[Entry] = []
    # (folder as listed, its real path, the real folders above it, the link it was reached through)
    stack: list[tuple[str, str, frozenset[str], str | None]] = [(root, real_root, frozenset(), None)]
    while stack:
        folder, real_folder, above, via = stack.pop()
        above = above | {real_folder}
        try:
            with os.scandir(folder) as it:
                children = list(it)
        except OSError as exc:
            found.append(Entry(folder, folder[prefix:], 0, None, f"folder cannot be read: {exc.strerror}"))
            continue
        for child in children:
            rel = child.path[prefix:]
            real = os.path.join(real_folder, child.name)
            try:
                st = child.stat(follow_symlinks=False)
            except OSError as exc:
                found.append(Entry(child.path, rel, 0, None, f"cannot stat file: {exc.strerror}"))
                continue
            if stat.S_ISLNK(st.st_mode):
                followed = _link(child.path, rel, real_root, excluded, above, follow_links)
                if isinstance(followed, Entry):
                    found.append(followed)
                else:
                    stack.append((child.path, followed, above, via or rel))
            elif stat.S_ISDIR(st.st_mode):
                if real not in excluded:
                    stack.append((child.path, real, above, via))
            elif not stat.S_ISREG(st.st_mode):
                kind = f"not a regular file: a {_kind(st.st_mode)}"
                found.append(Entry(child.path, rel, 0, st.st_mtime, skipped=kind))
            elif system_file(child.name):
                found.append(Entry(child.path, rel, st.st_size, st.st_mtime, skipped=system_file(child.name)))
            elif via is not None:
                found.append(Entry(child.path, rel, st.st_size, st.st_mtime, skipped=(
                    f"same file as {os.path.relpath(real, real_root)} (reached through the link {via}; read there)")))
            else:
                found.append(Entry(child.path, rel, st.st_size, st.st_mtime))
    return found


def _link(path: str, rel: str, real_root: str, excluded: set[str], above: frozenset[str],
          follow: bool) -> Entry | str:
    """A skipped entry for the symbolic link at ``path``, or the real folder to list through it."""
    target = os.readlink(path)
    real = os.path.realpath(path)

    def skip(reason: str, size: int = 0, mtime: float | None = None) -> Entry:
        return Entry(path, rel, size, mtime, skipped=f"symbolic link to {target!r}: {reason}")

    try:
        st = os.stat(path)
    except OSError as exc:
        return skip("dangling (the target does not exist)" if exc.errno == errno.ENOENT
                    else f"cannot be followed ({exc.strerror})")
    if not _inside(real, real_root):
        return skip("outside --input, not read", st.st_size, st.st_mtime)
    if any(_inside(real, e) for e in excluded):
        return skip("inside --output, not read")
    inside = os.path.relpath(real, real_root)
    if stat.S_ISREG(st.st_mode):
        return skip(f"the file is read once, as {inside}", st.st_size, st.st_mtime)
    if not stat.S_ISDIR(st.st_mode):
        return skip(f"not a regular file: a {_kind(st.st_mode)}", mtime=st.st_mtime)
    if not follow:
        return skip("links to folders are not followed (--follow-links follows those inside --input)")
    if real in above:
        return skip("a loop (the link leads back to a folder that holds it), not followed")
    return real


def _list_remote(uri: str, exclude: list[str]) -> list[Entry]:
    fs, base = filesystem(uri)
    scheme = uri.split("://", 1)[0]
    skip = tuple(e.rstrip("/") + "/" for e in exclude)
    found = []
    for info in fs.get_file_info(pafs.FileSelector(base, recursive=True)):
        if info.type != pafs.FileType.File:
            continue
        full = f"{scheme}://{info.path}"
        if full.startswith(skip):
            continue  # the run's own output folder
        rel = info.path[len(base):].lstrip("/")
        mtime = info.mtime.timestamp() if info.mtime else None
        found.append(Entry(full, rel, info.size or 0, mtime, skipped=system_file(info.base_name)))
    return found


def open_read(uri: str | bytes) -> IO[bytes]:
    """A binary reader that supports ``seek`` and ``read``. A local path that is not a regular file (a FIFO
    swapped in after listing, a device) raises OSError at once instead of blocking."""
    if is_local(uri):
        fd = os.open(local_path(uri), os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                raise OSError(errno.EINVAL, f"not a regular file: a {_kind(mode)}")
            os.set_blocking(fd, True)
            return os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise
    fs, path = filesystem(uri)
    return fs.open_input_file(path)


def exists(uri: str) -> bool:
    if is_local(uri):
        return os.path.exists(local_path(uri))
    fs, path = filesystem(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def delete(uri: str) -> None:
    if is_local(uri):
        os.unlink(local_path(uri))
        return
    fs, path = filesystem(uri)
    fs.delete_file(path)


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
        write_stream(uri, lambda f: f.write(data))
        return
    fs, path = filesystem(uri)
    with fs.open_output_stream(path) as f:  # all of it in one write: nothing half-made to send
        f.write(data)


def write_stream(uri: str, fill: Callable[[Any], Any]) -> None:
    """``fill(f)`` writes the file through ``f`` (a binary file), all of it or nothing, as ``write_bytes``: a
    large file is written as it is made, never held whole in memory."""
    if is_local(uri):
        path = local_path(uri)
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                fill(f)
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
    # an S3 upload is completed when its stream is closed, even after an error in ``fill``: the file is made
    # first (in memory, past 64 MB in a local temporary file) and sent only once all of it is there, under its
    # own key (a temporary key would need rights a stage's role does not have: tests/test_iam.py)
    with tempfile.SpooledTemporaryFile(max_size=64 << 20) as spool:
        fill(spool)
        spool.seek(0)
        with fs.open_output_stream(path) as f:
            shutil.copyfileobj(spool, f, 8 << 20)


def read_json(uri: str) -> Any:
    return json.loads(read_bytes(uri))


def write_text(uri: str, pieces: Iterable[str]) -> None:
    """The concatenated ``pieces`` as UTF-8, written as they come (about a MB at a time), all of it or nothing
    (``write_stream``): a file of a million rows is never one string in memory."""
    def fill(f) -> None:
        held: list[str] = []
        size = 0
        for piece in pieces:
            held.append(piece)
            size += len(piece)
            if size > 1 << 20:
                f.write("".join(held).encode())
                held, size = [], 0
        f.write("".join(held).encode())

    write_stream(uri, fill)


def write_json(uri: str, obj: Any) -> None:
    """``obj`` as indented JSON (``json.dumps(obj, indent=2, default=str)``), written piece by piece. A value
    of a dict (or ``obj`` itself) may be an iterator: it is written as a JSON array while it yields, so
    megadetector.json's million images are never all objects at once."""
    write_text(uri, _json_pieces(obj, 0))


def _json_pieces(obj: Any, level: int) -> Iterator[str]:
    """``json.dumps(obj, indent=2)`` of a value ``level`` deep, in pieces; iterators become arrays."""
    inner = "\n" + "  " * (level + 1)
    if isinstance(obj, Iterator):
        opened = False
        for item in obj:
            yield ("," if opened else "[") + inner
            yield from _json_pieces(item, level + 1)
            opened = True
        yield "\n" + "  " * level + "]" if opened else "[]"
    elif isinstance(obj, dict) and obj and any(isinstance(v, Iterator) for v in obj.values()):
        for i, (key, value) in enumerate(obj.items()):
            yield ("," if i else "{") + inner + json.dumps(str(key)) + ": "
            yield from _json_pieces(value, level + 1)
        yield "\n" + "  " * level + "}"
    else:  # a nested value is the top-level text with each line indented one level more per level
        for piece in _ENCODER.iterencode(obj):  # in pieces: a list of a million frames is never one string
            yield piece.replace("\n", "\n" + "  " * level)


_ENCODER = json.JSONEncoder(indent=2, default=str)  # json.dumps(obj, indent=2, default=str), piece by piece


def write_table(table: pa.Table, uri: str) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    write_bytes(uri, sink.getvalue().to_pybytes())


def read_table(uri: str, columns: list[str] | None = None) -> pa.Table:
    """A Parquet table; ``columns``: only those of them that it has (a million rows of the rest stay on disk)."""
    fs, path = filesystem(uri)
    if columns is not None:
        have = set(pq.read_schema(path, filesystem=fs).names)
        columns = [c for c in columns if c in have]
    return pq.read_table(path, filesystem=fs, columns=columns)


def list_names(uri: str) -> list[str]:
    """Names directly inside a folder URI, or [] when it does not exist."""
    fs, path = filesystem(uri)
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    return sorted(os.path.basename(i.path) for i in infos)
