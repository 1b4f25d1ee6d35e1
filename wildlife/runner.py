"""The embedded runner: walks the stage graph on this machine, saving the run state after every stage.

The state (``<output>/_run/state.json``) is the run input plus each finished stage's payload. A run that
stops for any reason (kill -9, a time limit, a crash) is continued with ``resume=True``: finished stages are
skipped and the looping stages pick up from their last checkpoint. Files added to the input before a resume
are listed and processed; files that vanished keep their rows, marked so.

One run at a time writes to an output folder (``wildlife.runlock``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pyarrow.compute as pc

from wildlife import fs, outputs, stage0, video_results
from wildlife.budget import BudgetExceeded
from wildlife.checkpoint import DEFAULT_EVERY, DeadlineReached
from wildlife.errors import InputError, OdinError, StageFailed
from wildlife.graph import GRAPH
from wildlife.progress import console, heartbeat
from wildlife.runinput import RunInput
from wildlife.runlock import output_lock
from wildlife.stages import Context

# Run input keys a resumed run may change; anything else must match the stored run.
CHANGEABLE_ON_RESUME = RunInput.changeable_on_resume()


class RunExists(InputError):
    """The output folder already holds a run and --resume was not given (or the settings differ)."""


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
    manifest, added, vanished = stage0.changed_input(stored, fresh, params.get("max_images"),
                                                     params.get("video_sample"))
    if not added and not vanished:
        return
    fs.write_table(manifest, guard["manifest_uri"])
    pending = pc.equal(manifest.column("status"), "pending")
    guard.update(files=manifest.num_rows, photos=video_results.items_to_run(manifest, params.get("video_sample")),
                 bytes=pc.sum(pc.if_else(pending, manifest.column("size"), 0)).as_py() or 0)
    note = (f"--resume: the input changed since run {state['session_id']} started: {len(added)} file(s) added "
            f"(processed now), {len(vanished)} vanished (kept in images.parquet with the reason)")
    guard["input_changes"] = {"added": len(added), "vanished": len(vanished)}
    guard["warnings"] = [*guard.get("warnings", []), note]
    state["done"] = [name for name in state["done"] if name == "GuardBudget"]
    console.print(f"[yellow]{note}[/yellow]")


def run(params: dict[str, Any], *, resume: bool = False, checkpoint_every: int = DEFAULT_EVERY,
        on_end: Callable[[dict[str, Any]], None] = lambda report: None) -> dict[str, Any]:
    """Run (or continue) the whole graph.

    Raises the stage's ``OdinError`` (BudgetExceeded, DeadlineReached, StageFailed: an ``OSError`` in a stage,
    a full disk or an unwritable output, becomes one), ``KeyboardInterrupt``, or a bug's own exception. Either
    way ``state.json`` and ``run_report.json`` say how the run ended (``STATUSES``), and once the run has
    started (the output is not another run's) ``on_end`` gets the run report as written, before the error is
    raised. ``runlock.OutputNotWritable`` or ``runlock.OutputBusy`` (exit 2) come before any work: one run per
    output folder at a time.
    """
    with output_lock(params["output_uri"]):
        return _run(params, resume, checkpoint_every, on_end)


def _run(params: dict[str, Any], resume: bool, checkpoint_every: int,
         on_end: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    state = _start(params, resume)
    state["status"] = "running"
    return _walk(state, Context(deadline=_deadline(state), checkpoint_every=checkpoint_every), on_end)


def _deadline(state: dict[str, Any]) -> float | None:
    """When the loops must stop at a checkpoint: the run's --max-job-duration from now (None: no limit)."""
    limit = state["params"].get("max_job_duration")
    return time.monotonic() + float(limit) if limit else None


def _walk(state: dict[str, Any], ctx: Context, on_end: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Run every stage not done yet, in graph order, saving the state after each."""
    save = lambda: fs.write_json(state_uri(state["params"]["output_uri"]), state)  # noqa: E731
    save()
    for stage in GRAPH:
        if stage.name in state["done"]:
            continue
        t0 = time.monotonic()
        try:
            with heartbeat(stage.name):  # a log hears from every stage at a steady interval
                payload = stage.load()(state, ctx)
        except BaseException as exc:
            error = _as_stage_failure(stage.name, exc, state["params"]["output_uri"])
            report = _stopped(state, stage.name, error)
            save()
            on_end(report)
            if error is exc:
                raise
            raise error from exc
        state[stage.name] = payload
        state["done"].append(stage.name)
        state["timings"][stage.name] = round(time.monotonic() - t0, 3)
        save()
        console.print(f"[green]✓[/green] {stage.name:<18} {time.monotonic() - t0:7.2f} s  {_brief(payload)}")
    state["status"] = "succeeded"
    save()
    on_end(fs.read_json(state["WriteOutputs"]["report_uri"]))
    return state


def rerun(output_uri: str, name: str, changes: dict[str, Any] | None = None, *, checkpoint_every: int = DEFAULT_EVERY,
          on_end: Callable[[dict[str, Any]], None] = lambda report: None) -> dict[str, Any]:
    """Run stage ``name`` of the finished (or stopped) run in ``output_uri`` again from its stored inputs, with
    the run input's ``changes`` (each a setting ``name`` or an earlier stage reads first is refused), then every
    later stage: each depends on the one before, so the outputs always come from one set of settings.

    A looping stage starts afresh (its checkpoints are removed). The later stages' payloads are dropped first,
    so a failure leaves a state that ``run --resume`` continues from ``name``.
    """
    from wildlife.stages import CHECKPOINTS, work_uri  # noqa: PLC0415

    changes = changes or {}
    names = [s.name for s in GRAPH]
    with output_lock(output_uri):
        state = load_state(output_uri)
        if state is None:
            raise InputError(f"{output_uri} holds no run (no {state_uri(output_uri)}).",
                             hint="Give the --output of an earlier `run`.")
        missing = [n for n in names[:names.index(name)] if n not in state["done"]]
        if missing:
            raise InputError(f"{name} needs {', '.join(missing)} of run {state['session_id']}, not done yet.",
                             hint="Finish the run first: `run --resume` with its options.")
        for key in changes:
            first = RunInput.first_read_by(key)
            if first is None or names.index(first) < names.index(name):
                raise InputError(f"{key} is read before {name} (by {first or 'the whole run'}): re-running {name} "
                                 "alone cannot change it.",
                                 hint=f"Re-run from {first}, or start a new run." if first else "Start a new run.")
        state["params"].update(changes)
        for later in names[names.index(name):]:
            state.pop(later, None)
            state["timings"].pop(later, None)
        state["done"] = [n for n in state["done"] if names.index(n) < names.index(name)]
        state.pop("error", None)
        state["status"] = "running"
        if name in CHECKPOINTS:
            filesystem, path = fs.filesystem(work_uri(state, CHECKPOINTS[name]))
            filesystem.delete_dir_contents(path, missing_dir_ok=True)
        console.print(f"re-running {name} of run {state['session_id']}"
                      + (f" with {', '.join(f'{k}={v}' for k, v in changes.items())}" if changes else "")
                      + f", then {', '.join(names[names.index(name) + 1:]) or 'nothing else'}")
        return _walk(state, Context(deadline=_deadline(state), checkpoint_every=checkpoint_every), on_end)


def _as_stage_failure(stage: str, exc: BaseException, output_uri: str) -> BaseException:
    """An ``OSError`` (disk full, a file that cannot be written, a service that does not answer) is the
    environment's, not a bug: the stage failed and the user can fix the cause and resume."""
    if isinstance(exc, OSError) and not isinstance(exc, OdinError):
        return StageFailed(f"{stage} failed: {type(exc).__name__}: {exc}",
                           hint=f"The run state is saved in {fs.join(output_uri, '_run')}: fix the cause and "
                                "re-run with --resume.")
    return exc


# How a run ends, as state.json, run_report.json, report.html and the terminal say it.
STATUSES = ("running", "succeeded", "failed", "budget_exceeded", "deadline_reached", "interrupted")


def _status(exc: BaseException) -> str:
    if isinstance(exc, BudgetExceeded):
        return "budget_exceeded"
    if isinstance(exc, DeadlineReached):
        return "deadline_reached"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return "failed"


def _stopped(state: dict[str, Any], stage: str, exc: BaseException) -> dict[str, Any]:
    state["status"] = _status(exc)
    state["error"] = {"stage": stage, "type": type(exc).__name__, "message": str(exc)}
    report = {"session_id": state["session_id"], "status": state["status"], "error": state["error"], "warnings": []}
    try:
        report = outputs.report(state)
        fs.write_json(fs.join(state["params"]["output_uri"], "run_report.json"), report)
    except Exception as err:  # noqa: BLE001 - the original error matters more than the report, but say so
        console.print(f"[yellow]warning:[/yellow] run_report.json could not be written ({type(err).__name__}: "
                      f"{err}); _run/state.json has the run's status and error")
    return report


def _brief(payload: dict[str, Any]) -> str:
    keys = [k for k, v in payload.items() if isinstance(v, int | float) and not isinstance(v, bool)]
    return ", ".join(f"{k}={payload[k]}" for k in keys[:5])
