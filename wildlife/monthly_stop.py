"""The monthly stop: at 100% of the profile's monthly budget the stack stops spending until the next month.

AWS Budgets publishes to the stack's alarm topic (``modules.monitoring``); a small Lambda subscribed to it
(``functions/monthly_stop``) calls ``handle``: on a notification that the ACTUAL cost of *this* stack's budget
has reached its budgeted amount (the 80% alert arrives on the same topic and only warns), it scales every
compute environment to 0 vCPUs, disables it, and writes the stop marker ``control/stopped.json`` in the
stack's bucket. GuardBudget (and ``scripts/run.py run --target aws`` before it uploads anything) reads the
marker and refuses new runs with exit 3 (``BudgetExceeded``). The stop lasts until the next calendar month
(UTC), when a scheduled call (``{"action": "resume"}``) restores the profile's vCPUs, or until
``scripts/run.py budget resume`` does the same now. The marker is overwritten, never deleted (no role of
the stack may delete objects), and a marker from an earlier month no longer stops anything.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from typing import Any

from wildlife.budget import BudgetExceeded

MARKER_KEY = "control/stopped.json"  # in the stack's bucket
BUDGET_ANCHOR = "AWS Budget Notification"  # the first words of every Budgets message to SNS (plain text)
_FIELD = re.compile(r"^(Budget Name|Budgeted Amount|Alert Type|ACTUAL Amount):\s*(.+?)\s*$", re.M)


def budget_name(stack: str) -> str:
    """The AWS Budgets budget of a stack (``modules.monitoring`` creates it under this name)."""
    return f"{stack}-monthly"


def environments(stack: str, compute: dict) -> dict[str, dict[str, int]]:
    """Each Batch compute environment of a profile's ``compute`` section, by name, with the vCPUs it runs
    with: ``modules.compute`` creates them from this, ``resume`` restores them from it."""
    kinds = ("gpu",) if compute.get("gpu_required") else ("gpu", "cpu")
    return {f"{stack}-{kind}": {"min_vcpus": int(compute.get("min_vcpus", 0)), "max_vcpus": int(compute["max_vcpus"])}
            for kind in kinds}


def _amount(text: str) -> float:
    return float(text.replace("$", "").replace(",", ""))


def parse(message: str) -> dict[str, Any] | None:
    """The fields of an AWS Budgets notification (the plain text Budgets publishes), None for other messages
    (a CloudWatch alarm's JSON, an EventBridge event)."""
    if not message.lstrip().startswith(BUDGET_ANCHOR):
        return None
    fields = dict(_FIELD.findall(message))
    if not {"Budget Name", "Budgeted Amount", "ACTUAL Amount"} <= set(fields):
        return None
    return {"budget": fields["Budget Name"], "alert_type": fields.get("Alert Type", ""),
            "budgeted_usd": _amount(fields["Budgeted Amount"]), "actual_usd": _amount(fields["ACTUAL Amount"])}


def reached(note: dict[str, Any] | None, budget: str) -> bool:
    """A notification that this budget's ACTUAL cost is at or over the budgeted amount (not a forecast, not
    the 80% warning, not another budget's)."""
    return bool(note) and note["budget"] == budget and note["alert_type"] == "ACTUAL" \
        and note["actual_usd"] >= note["budgeted_usd"]


def month(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y-%m")


def next_month(now: dt.datetime) -> str:
    now = now.astimezone(dt.UTC)
    return (dt.date(now.year + (now.month == 12), now.month % 12 + 1, 1)).isoformat()


def read_marker(s3, bucket: str) -> dict[str, Any] | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=MARKER_KEY)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    return json.loads(body)


def _write_marker(s3, bucket: str, marker: dict[str, Any]) -> None:
    s3.put_object(Bucket=bucket, Key=MARKER_KEY, Body=json.dumps(marker, indent=1).encode(),
                  ContentType="application/json")


def stopped(marker: dict[str, Any] | None, now: dt.datetime) -> bool:
    return bool(marker) and marker.get("stopped") is True and marker.get("month") == month(now)


def refuse_if_stopped(s3, bucket: str, now: dt.datetime | None = None) -> None:
    """Raise ``BudgetExceeded`` (exit 3; by that name the state machine's Catch ends the run in FailBudget) if
    the stack stopped spending this month; a stop from an earlier month is over."""
    now = now or dt.datetime.now(dt.UTC)
    marker = read_marker(s3, bucket)
    if stopped(marker, now):
        raise BudgetExceeded(
            f"the monthly budget {marker['budget']} was reached on {marker['stopped_at'][:10]} (ACTUAL "
            f"{marker['actual_usd']:.2f} USD of {marker['budgeted_usd']:.2f} USD): the stack stopped spending and "
            f"takes no new runs until {next_month(now)}. Nothing was started.",
            hint="To lift the stop now: `scripts/run.py budget resume --target aws` (restores the profile's "
                 "vCPUs); to stop later, raise monitoring.monthly_budget_dkk in the profile and apply.")


def refuse_run_if_stopped(params: dict[str, Any]) -> None:
    """GuardBudget's check: an AWS run (its work files in the stack's bucket) refused while the stack is
    stopped. Local runs and runs whose files are not in S3 are never stopped."""
    uri = params.get("work_uri") or params.get("output_uri") or ""
    if params.get("target", "local") == "local" or not uri.startswith("s3://"):
        return
    import boto3  # noqa: PLC0415

    refuse_if_stopped(boto3.client("s3"), uri.removeprefix("s3://").split("/", 1)[0])


def stop(batch, s3, *, bucket: str, note: dict[str, Any], envs: dict[str, dict[str, int]],
         now: dt.datetime) -> dict[str, Any]:
    """Write the stop marker (first: new runs are refused even if Batch then fails, and Lambda's retry redoes
    both), then scale every compute environment to 0 vCPUs and disable it."""
    marker = {"stopped": True, "month": month(now), "stopped_at": now.isoformat(), "budget": note["budget"],
              "actual_usd": note["actual_usd"], "budgeted_usd": note["budgeted_usd"], "environments": sorted(envs)}
    _write_marker(s3, bucket, marker)
    for name in envs:
        batch.update_compute_environment(computeEnvironment=name, state="DISABLED",
                                         computeResources={"minvCpus": 0, "maxvCpus": 0})
    return marker


def resume(batch, s3, *, bucket: str, envs: dict[str, dict[str, int]], now: dt.datetime,
           by: str) -> dict[str, Any]:
    """Restore the profile's vCPUs, enable the environments, and mark the stack running."""
    for name, vcpus in envs.items():
        batch.update_compute_environment(computeEnvironment=name, state="ENABLED", computeResources={
            "minvCpus": vcpus["min_vcpus"], "maxvCpus": vcpus["max_vcpus"]})
    marker = {"stopped": False, "month": month(now), "resumed_at": now.isoformat(), "by": by,
              "environments": sorted(envs)}
    _write_marker(s3, bucket, marker)
    return marker


def handle(event: dict[str, Any], batch, s3, *, bucket: str, budget: str, envs: dict[str, dict[str, int]],
           now: dt.datetime | None = None) -> dict[str, Any]:
    """The Lambda's logic: an SNS event (one or more records) or the monthly schedule's ``resume``."""
    now = now or dt.datetime.now(dt.UTC)
    if event.get("action") == "resume":
        marker = read_marker(s3, bucket)
        if not (marker and marker.get("stopped")):
            return {"action": "none", "reason": "the stack was not stopped"}
        return {"action": "resumed", "marker": resume(batch, s3, bucket=bucket, envs=envs, now=now, by="schedule")}
    for record in event.get("Records", []):
        note = parse(record.get("Sns", {}).get("Message", ""))
        if reached(note, budget):
            return {"action": "stopped", "marker": stop(batch, s3, bucket=bucket, note=note, envs=envs, now=now)}
    return {"action": "none", "reason": "no notification that this stack's budget was reached"}


def handle_from_environment(event: dict[str, Any]) -> dict[str, Any]:
    """``handle`` with the stack's names from the function's environment (``modules.monthly_stop``)."""
    import boto3  # noqa: PLC0415

    return handle(event, boto3.client("batch"), boto3.client("s3"), bucket=os.environ["ODIN_BUCKET"],
                  budget=os.environ["ODIN_BUDGET_NAME"], envs=json.loads(os.environ["ODIN_COMPUTE_ENVIRONMENTS"]))
