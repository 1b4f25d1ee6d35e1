"""The embedded runner: walks the stage graph on this machine, saving the run state after every stage.

The state (``<output>/_run/state.json``) is the run input plus each finished stage's payload. A run that
stops for any reason (kill -9, a time limit, a crash) is continued with ``resume=True``: finished stages are
skipped and the looping stages pick up from their last checkpoint. Files added to the input before a resume
are listed and processed; files that vanished keep their rows, marked so.

One run at a time writes to an output folder: ``<output>/_run/lock`` is held (``flock``) while it works,
and names its holder.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pyarrow.compute as pc

from wildlife import fs, outputs, stage0
from wildlife.budget import BudgetExceeded
from wildlife.errors import InputError
from wildlife.graph import GRAPH
from wildlife.progress import console
from wildlife.stages import Context

# Run input keys a resumed run may change; anything else must match the stored run.
CHANGEABLE_ON_RESUME = ("budget_dkk", "max_job_duration", "use_spot", "weather_provider")


class RunExists(InputError):
    """The output folder already holds a run and --resume was not given (or the settings differ)."""


class OutputBusy(InputError):
    """Another run is writing to this output folder now."""


class OutputNotWritable(InputError):
    """The output folder cannot be written: nothing was started."""


def state_uri(output_uri: str) -> str:
    return fs.join(output_uri, "_run", "state.json")


def load_state(output_uri: str) -> dict[str, Any] | None:
    uri = state_uri(output_uri)
    return fs.read_json(uri) if fs.exists(uri) else None


def _start(params: dict[str, Any], resume: bool) -> dict[str, Any]:
    state = load_state(params["output_uri"])
    if state is None:
        return {"session_id": uuid.uuid4().hex[:12], "params": params, "done": [], "timings": {}}
    if not resume:
        raise RunExists(
            f"{params['output_uri']} already holds run {state['session_id']} "
            f"({len(state['done'])} of {len(GRAPH)} stages done).",
            "Pass --resume to continue it, or choose another --output.",
        )
    stored = state["params"]
    for key, value in params.items():
        if key in CHANGEABLE_ON_RESUME:
            stored[key] = value
        elif key not in stored and not value:
            stored[key] = value  # a setting the stored run predates, at its default
        elif stored.get(key) != value and key not in ("output_uri",):
            raise RunExists(
                f"--resume: {key} was {stored.get(key)!r} for run {state['session_id']} and is {value!r} now.",
                "Resume with the same input and settings, or start a new run in another --output.",
            )
    state.pop("error", None)
    state["status"] = "running"
    if "GuardBudget" in state["done"]:
        _see_input_changes(state)
    return state


def _see_input_changes(state: dict[str, Any]) -> None:
    """List the input again: files added since the run started are processed, vanished ones are marked.

    The later stages run again; their checkpoints keep every photo already done, so only the new photos
    are read and detected.
    """
    params, guard = state["params"], state["GuardBudget"]
    stored = fs.read_table(guard["manifest_uri"])
    fresh = stage0.scan(params["input_uri"], None, follow_links=bool(params.get("follow_links")),
                        output_uri=params["output_uri"])
    manifest, added, vanished = stage0.changed_input(stored, fresh, params.get("max_images"))
    if not added and not vanished:
        return
    fs.write_table(manifest, guard["manifest_uri"])
    pending = pc.equal(manifest.column("status"), "pending")
    guard.update(files=manifest.num_rows, photos=pc.sum(pending.cast("int64")).as_py() or 0,
                 bytes=pc.sum(pc.if_else(pending, manifest.column("size"), 0)).as_py() or 0)
    note = (f"--resume: the input changed since run {state['session_id']} started: {len(added)} file(s) added "
            f"(processed now), {len(vanished)} vanished (kept in images.parquet with the reason)")
    guard["input_changes"] = {"added": len(added), "vanished": len(vanished)}
    guard["warnings"] = [*guard.get("warnings", []), note]
    state["done"] = [name for name in state["done"] if name == "GuardBudget"]
    console.print(f"[yellow]{note}[/yellow]")


def lock_uri(output_uri: str) -> str:
    return fs.join(output_uri, "_run", "lock")


@contextlib.contextmanager
def output_lock(output_uri: str) -> Iterator[None]:
    """Hold ``<output>/_run/lock`` while a run works there. Also the up-front check that the output can be
    written at all.

    Locally the lock is an ``flock`` on the file, so the kernel lets go when the holder dies, however it
    dies. On object stores it is an object naming the holder: a holder on this host whose process is gone
    is taken over; any other is reported, and must be deleted by hand if no run is using it.
    """
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


def run(params: dict[str, Any], *, resume: bool = False, checkpoint_every: int = 500) -> dict[str, Any]:
    """Run (or continue) the whole graph. Raises BudgetExceeded, DeadlineReached or the stage's error;
    OutputNotWritable or OutputBusy (exit 2) before any work."""
    with output_lock(params["output_uri"]):
        return _run(params, resume, checkpoint_every)


def _run(params: dict[str, Any], resume: bool, checkpoint_every: int) -> dict[str, Any]:
    state = _start(params, resume)
    deadline = None
    if state["params"].get("max_job_duration"):
        deadline = time.monotonic() + float(state["params"]["max_job_duration"])
    ctx = Context(deadline=deadline, checkpoint_every=checkpoint_every)
    save = lambda: fs.write_json(state_uri(state["params"]["output_uri"]), state)  # noqa: E731
    save()
    for stage in GRAPH:
        if stage.name in state["done"]:
            continue
        t0 = time.monotonic()
        try:
            payload = stage.load()(state, ctx)
        except BudgetExceeded as exc:
            _stopped(state, "budget_exceeded", stage.name, exc)
            save()
            raise
        except BaseException as exc:
            _stopped(state, "failed", stage.name, exc)
            save()
            raise
        state[stage.name] = payload
        state["done"].append(stage.name)
        state["timings"][stage.name] = round(time.monotonic() - t0, 3)
        save()
        console.print(f"[green]✓[/green] {stage.name:<18} {time.monotonic() - t0:7.2f} s  {_brief(payload)}")
    state["status"] = "succeeded"
    save()
    return state


def _stopped(state: dict[str, Any], status: str, stage: str, exc: BaseException) -> None:
    state["status"] = status
    state["error"] = {"stage": stage, "type": type(exc).__name__, "message": str(exc)}
    report_uri = fs.join(state["params"]["output_uri"], "run_report.json")
    with contextlib.suppress(Exception):  # the original error matters more than the report
        fs.write_json(report_uri, outputs.report(state))


def _brief(payload: dict[str, Any]) -> str:
    keys = [k for k, v in payload.items() if isinstance(v, int | float) and not isinstance(v, bool)]
    return ", ".join(f"{k}={payload[k]}" for k in keys[:5])
