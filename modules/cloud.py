"""Driving a deployed stack from the CLI: where it is, moving data, starting and following a run.

The stack's bucket and state machine come from Terraform's outputs of the synthesised stack, or from a
JSON file named by ``ODIN_STACK_OUTPUTS`` (a stack deployed from another machine). The emulator profile
sets ``AWS_ENDPOINT_URL`` from its ``endpoint``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from wildlife.errors import OdinError

ROOT = Path(__file__).resolve().parent.parent


class NotDeployed(OdinError):
    """The profile's stack has no outputs: it was never applied here."""


def stack_dir(name: str) -> Path:
    """Where ``python main.py`` put a stack: ``cdktf.out/``, or ``$ODIN_SYNTH_OUT`` when set."""
    return Path(os.environ.get("ODIN_SYNTH_OUT") or ROOT / "cdktf.out") / "stacks" / name


def stack_outputs(target: str) -> dict[str, str]:
    if os.environ.get("ODIN_STACK_OUTPUTS"):
        return json.loads(Path(os.environ["ODIN_STACK_OUTPUTS"]).read_text())
    import subprocess  # noqa: PLC0415

    stack = stack_dir(f"odin-{target}")
    result = subprocess.run(["terraform", "output", "-json"], cwd=stack, capture_output=True, text=True) \
        if stack.is_dir() else None
    outputs = json.loads(result.stdout) if result is not None and result.returncode == 0 and result.stdout else {}
    if not outputs:
        raise NotDeployed(f"--target {target}: Odin is not deployed there yet (no Terraform outputs for "
                          f"odin-{target}). Deploy with `scripts/run.py apply --target {target}`, or set "
                          "ODIN_STACK_OUTPUTS to a JSON file with bucket and state_machine_arn.")
    return {k: v["value"] for k, v in outputs.items()}


def profile(target: str) -> dict[str, Any]:
    import yaml  # noqa: PLC0415

    return yaml.safe_load((ROOT / "conf" / "profiles" / f"{target}.yaml").read_text())


def use_emulator(target: str) -> None:
    """Point this process (boto3 and pyarrow's S3 alike) at the profile's emulator, if it has one."""
    if os.environ.get("AWS_ENDPOINT_URL"):
        return
    chosen = profile(target)
    if chosen.get("endpoint"):
        os.environ.update(AWS_ENDPOINT_URL=chosen["endpoint"], AWS_ACCESS_KEY_ID="test",
                          AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION=chosen["region"])
        os.environ.pop("AWS_PROFILE", None)
        os.environ.pop("AWS_SESSION_TOKEN", None)


def client(service: str, target: str):
    import boto3  # noqa: PLC0415

    use_emulator(target)
    return boto3.client(service, region_name=os.environ.get("AWS_DEFAULT_REGION", "eu-north-1"))


def split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def upload(s3, folder: Path, uri: str, progress: Callable[[int], None] = lambda n: None,
           files: list[tuple[str | bytes, str]] | None = None) -> int:
    """Files to ``uri``: every file under ``folder``, or ``files`` as (local path, key under ``uri``) pairs (a
    run's manifest: real paths, also of a name that is not UTF-8 or under a followed link). Files already there
    with the same size are skipped (resumable)."""
    bucket, prefix = split(uri)
    existing = {o["Key"]: o["Size"] for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix) for o in page.get("Contents", [])}
    if files is None:
        files = [(str(p), p.relative_to(folder).as_posix()) for p in sorted(folder.rglob("*")) if p.is_file()]
    sent = 0
    for path, name in files:
        key = f"{prefix.rstrip('/')}/{name}"
        if existing.get(key) != os.stat(path).st_size:
            s3.upload_file(os.fsdecode(path), bucket, key)
            sent += 1
        progress(1)
    return sent


def download(s3, uri: str, folder: Path, warn: Callable[[str], None] | None = None) -> list[Path]:
    """Every object under ``uri`` (but its ``_run/`` work files) into ``folder``, under the same relative names.

    A key whose name would land outside ``folder`` (``..`` parts, an absolute path, a path through a
    symbolic link that leads out) is not written; ``warn`` (default: the console) is told why.
    """
    if warn is None:
        from wildlife.progress import console  # noqa: PLC0415

        warn = lambda message: console.print(f"[yellow]warning:[/yellow] {message}")  # noqa: E731
    bucket, prefix = split(uri)
    base = folder.resolve()
    got = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix.rstrip("/") + "/"):
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(prefix.rstrip("/")) + 1:]
            if rel.startswith("_run/") or rel.endswith("/"):
                continue  # work files stay in the bucket; a "folder" marker holds nothing
            target = inside(base, rel)
            if target is None:
                warn(f"s3://{bucket}/{obj['Key']} not downloaded: its name leads outside {folder}")
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, obj["Key"], str(target))
            got.append(target)
    return got


def inside(folder: Path, rel: str) -> Path | None:
    """``folder / rel`` when that stays inside ``folder`` (an absolute folder), else None."""
    parts = rel.split("/")
    if not rel or rel.startswith("/") or any(p in ("", ".", "..") for p in parts[:-1]) or parts[-1] in (".", ".."):
        return None
    target = folder.joinpath(*parts)
    if not target.parent.resolve().is_relative_to(folder) or target.is_symlink():
        return None
    return target


def listing(s3, uri: str) -> Iterator[tuple[str, int]]:
    bucket, prefix = split(uri)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            yield f"s3://{bucket}/{obj['Key']}", obj["Size"]


def events_after(sfn, execution_arn: str, last_id: int = 0) -> list[dict[str, Any]]:
    """The execution's events after event ``last_id`` (all of them by default), oldest first. Newest page
    first, and older pages only until one reaches back to ``last_id``: a poll costs one call however long the
    history is (reading it all every poll is 25 calls every 2 s at 25,000 events, past the API's refill rate)."""
    new: list[dict[str, Any]] = []
    token = None
    while True:
        page = sfn.get_execution_history(executionArn=execution_arn, reverseOrder=True, maxResults=1000,
                                         **({"nextToken": token} if token else {}))
        fresh = [event for event in page["events"] if event["id"] > last_id]
        new.extend(fresh)
        token = page.get("nextToken")
        if len(fresh) < len(page["events"]) or not token:
            return sorted(new, key=lambda event: event["id"])  # an emulator may ignore reverseOrder


def follow(sfn, execution_arn: str, poll_s: float = 2.0) -> Iterator[dict[str, Any]]:
    """Each state the execution enters, as it happens, then its final description."""
    last_id = 0
    while True:
        # Describe before reading the history: an execution that ends between the two reads then still has its
        # last states shown (read the other way round, a fast run's states were lost).
        described = sfn.describe_execution(executionArn=execution_arn)
        for event in events_after(sfn, execution_arn, last_id):
            last_id = event["id"]
            if event["type"].endswith("StateEntered"):
                yield {"state": event["stateEnteredEventDetails"]["name"], "time": event["timestamp"]}
        if described["status"] != "RUNNING":
            yield {"status": described["status"], "output": described.get("output"),
                   "error": described.get("error"), "cause": described.get("cause")}
            return
        time.sleep(poll_s)


def batch_jobs(batch, queue: str, session: str) -> list[dict[str, Any]]:
    """The children of the run's Stage 1 array job (or the job itself when it was not an array)."""
    parents = batch.list_jobs(jobQueue=queue, filters=[{"name": "JOB_NAME", "values": [f"odin-stage1-{session}"]}])
    jobs = []
    for parent in parents.get("jobSummaryList", []):
        children = batch.list_jobs(arrayJobId=parent["jobId"]).get("jobSummaryList", [])
        jobs.extend(children or [parent])
    return jobs


def batch_cost(jobs: list[dict[str, Any]], usd_per_hour: float, usd_to_dkk: float) -> tuple[float, float]:
    """(instance hours, DKK) from Batch job summaries' startedAt/stoppedAt (milliseconds)."""
    done = [j for j in jobs if j.get("startedAt") is not None and j.get("stoppedAt") is not None]
    seconds = sum(max(0, j["stoppedAt"] - j["startedAt"]) / 1000 for j in done)
    hours = seconds / 3600
    return hours, hours * usd_per_hour * usd_to_dkk


PERIODS = ("day", "week", "month")


def period_of(created: str, period: str) -> str:
    """The day (2026-11-24), ISO week (2026-W48) or month (2026-11) of a run report's ``created`` (UTC)."""
    from datetime import UTC, datetime  # noqa: PLC0415

    when = datetime.fromisoformat(created).astimezone(UTC)
    if period == "day":
        return f"{when:%Y-%m-%d}"
    if period == "week":
        year, week, _ = when.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{when:%Y-%m}"


def run_reports(s3, bucket: str) -> Iterator[dict[str, Any]]:
    """Every run's ``runs/<session>/run_report.json`` (``runs/frames/`` and ``runs/crops/`` hold none)."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="runs/"):
        for obj in page.get("Contents", []):
            parts = obj["Key"].split("/")
            if len(parts) == 3 and parts[2] == "run_report.json":
                yield json.loads(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())


def run_cost(report: dict[str, Any], jobs: list[dict[str, Any]], prices: dict[str, Any],
             instance_type: str | None = None) -> dict[str, Any]:
    """A run's Stage 1 cost from its Batch jobs, priced at its instance type and spot or on-demand rate."""
    params = report.get("params") or {}
    itype = instance_type or params.get("instance_type") or prices["default_instance"]
    spot = params.get("use_spot", True)
    rate = float(prices["instances"][itype]["spot" if spot else "on_demand"])
    hours, dkk = batch_cost(jobs, rate, float(prices["usd_to_dkk"]))
    return {"instance_type": itype, "spot": spot, "usd_per_hour": rate, "jobs": len(jobs), "hours": hours, "dkk": dkk}


def compute_estimate(report: dict[str, Any]) -> float | None:
    """The compute line of a run report's estimate (DKK), what ``run_cost`` measures."""
    lines = (report.get("estimate") or {}).get("lines", [])
    return next((line["dkk"] for line in lines if line["item"].startswith("compute")), None)


def cost_by_period(runs: list[tuple[dict[str, Any], dict[str, Any] | None]], period: str) -> list[dict[str, Any]]:
    """Rows per period, oldest first, from (run report, its ``run_cost``, or None when Batch lists no job of it).

    Measured is Batch's job time, or the report's own measure (a local run: 0). A succeeded run that Batch no
    longer lists (it keeps finished jobs for a limited time) counts at its compute estimate, in
    ``estimated_dkk``, never as measured; any other run without jobs ran no Stage 1 that Batch remembers and
    is counted in ``runs_unpriced``."""
    rows: dict[str, dict[str, Any]] = {}
    for report, cost in runs:
        key = period_of(report["created"], period)
        row = rows.setdefault(key, {"period": key, "runs": 0, "succeeded": 0, "instance_hours": 0.0,
                                    "measured_dkk": 0.0, "estimated_dkk": 0.0, "runs_at_estimate": 0,
                                    "runs_unpriced": 0})
        row["runs"] += 1
        row["succeeded"] += report.get("status") == "succeeded"
        if cost is not None and cost["jobs"]:
            row["instance_hours"] += cost["hours"]
            row["measured_dkk"] += cost["dkk"]
        elif (report.get("measured") or {}).get("cost_dkk") is not None:
            row["measured_dkk"] += report["measured"]["cost_dkk"]
        elif report.get("status") == "succeeded" and compute_estimate(report) is not None:
            row["runs_at_estimate"] += 1
            row["estimated_dkk"] += float(compute_estimate(report))
        else:
            row["runs_unpriced"] += 1
    return [rows[k] for k in sorted(rows)]
