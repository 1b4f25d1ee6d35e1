"""What the Lambda handlers share: turn a Step Functions event into a stage call, exactly as the runner does.

The execution input is the original design's JSON (``wildlife.runinput.RunInput``); the stages read
``state["params"]``, which is that input with Odin's defaults filled in. Errors keep their class names
(``BudgetExceeded``), which is what the state machine's Catch clauses match.
"""

from __future__ import annotations

import time
from typing import Any

from wildlife.graph import LAMBDAS, stage
from wildlife.runinput import RunInput
from wildlife.stages import Context


def params_from_input(run_input: dict[str, Any]) -> dict[str, Any]:
    """The stages' ``state["params"]`` from an execution input (``wildlife.runinput``: defaults filled in)."""
    return RunInput.from_execution_input(run_input).params()


def handle(stage_name: str, event: dict[str, Any], context: Any = None, *, function: str | None = None):
    """Run one stage for a Lambda invocation; returns the stage's payload (small JSON)."""
    state = dict(event["state"])
    state["session_id"] = event.get("session_id") or state.get("session_id") or "local"
    state["params"] = params_from_input(state)
    if "shard" in event:  # a Distributed Map item
        state["shard"] = event["shard"]
    remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else 900
    ctx = Context(deadline=time.monotonic() + max(remaining - 30, 1))
    fn = stage(stage_name).load(function)
    return fn(state, ctx)


def handler_for(module: str):
    """The handler of ``functions/<folder>/handler.py`` (``module`` is its ``__name__``): the Lambda of
    ``graph.LAMBDAS`` with that folder, so a handler file names nothing the graph does not own."""
    folder = module.split(".")[-2]
    (task,) = [t for t in LAMBDAS if t.folder == folder]

    def handler(event: dict[str, Any], context: Any = None):
        if task.stage is None:
            return failure_report(event)
        return handle(task.stage, event, context, function=task.function)

    handler.task = task
    return handler


def failure_report(event: dict[str, Any]) -> dict[str, Any]:
    """The Catch path: write ``run_report.json`` with the error, so a failed run is never silent."""
    from wildlife import fs, outputs  # noqa: PLC0415

    state = dict(event["state"])
    state["session_id"] = event.get("session_id") or "unknown"
    state["params"] = params_from_input(state)
    error = state.get("error") or {}
    state["status"] = "failed"
    state["error"] = {"type": error.get("Error"), "message": error.get("Cause")}
    uri = fs.join(state["params"]["output_uri"], "run_report.json")
    fs.write_json(uri, outputs.report(state))
    return {"report_uri": uri}
