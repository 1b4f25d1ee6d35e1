"""The commands that drive a deployed stack: plan/apply/destroy, run on AWS, status, logs, data."""

from __future__ import annotations

import json

import click

from modules.cloud import PERIODS
from wildlife import budget
from wildlife.cli.common import EXIT_BUDGET, EXIT_FAILED, EXIT_USAGE, estimate_for, fail
from wildlife.errors import InputError, OdinError
from wildlife.progress import console


def _terraform_step(stack: str, *args: str) -> None:
    from modules import terraform  # noqa: PLC0415

    result = terraform.terraform(stack, *args, "-no-color")
    if result.returncode != 0:
        fail(EXIT_FAILED, f"terraform {args[0]} failed:\n{(result.stdout + result.stderr)[-3000:]}")
    console.print(result.stdout[-2000:] if args[0] in ("plan", "apply", "destroy") else f"terraform {args[0]}: ok")


def _infra(target: str, action: str) -> None:
    from modules import terraform  # noqa: PLC0415

    stack = f"odin-{target}"
    synth = terraform.synth(target)
    if synth.returncode != 0:
        fail(EXIT_FAILED, f"synth failed:\n{synth.stderr[-3000:]}")
    console.print(f"synthesised {terraform.stack_dir(stack)}")
    if target == "aws" and not terraform.has_aws_credentials():
        _terraform_step(stack, "init", "-backend=false", "-input=false")
        _terraform_step(stack, "validate")
        fail(EXIT_FAILED, "the stack is synthesised and valid, but not planned: a plan needs AWS credentials "
                           "(AWS_PROFILE, access keys or an OIDC role) and the state bucket and lock table named in "
                           "conf/profiles/aws.yaml (create them once). Terraform asks AWS even for a new stack: it "
                           "checks the state machine with ValidateStateMachineDefinition.")
    # the emulator's state is a local file that goes with the emulator: never migrate it
    _terraform_step(stack, "init", "-input=false", *(["-reconfigure"] if target == "localstack" else []))
    extra = ["-auto-approve"] if action in ("apply", "destroy") else []
    _terraform_step(stack, action, "-input=false", *extra)


_infra_target = click.option("--target", type=click.Choice(["aws", "localstack"]), default="aws", show_default=True)


@click.command()
@_infra_target
def plan(target):
    """Synthesise the profile's stack and show Terraform's plan (offline: synthesise and validate, and say
    what a plan needs)."""
    _infra(target, "plan")


@click.command()
@_infra_target
def apply(target):
    """Synthesise the profile's stack and apply it."""
    _infra(target, "apply")


@click.command()
@_infra_target
def destroy(target):
    """Destroy the profile's stack."""
    _infra(target, "destroy")


def run_cloud(run) -> None:
    """Upload a local input, guard the budget, start the execution, follow it, fetch the outputs.

    ``run`` is the CLI's ``RunInput``; the execution input is that run input with the bucket's locations.
    On AWS the budget is guarded here before anything is uploaded. On the emulator (no Lambda, no Batch)
    this host plays those tasks first and the state machine replays them (``modules.emulated``), so a run
    over budget is started anyway and must end in ``FailBudget``, as it would on AWS.
    """
    import uuid  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from modules import cloud  # noqa: PLC0415
    from wildlife import stage0  # noqa: PLC0415

    target, output_uri = run.target, run.output_uri
    outputs = cloud.stack_outputs(target)  # NotDeployed says how to deploy
    emulated = target == "localstack"
    # a local input: only the photos the run will process are uploaded, and the estimate prices exactly those
    # (their bytes, one PUT each); the other files are listed in <output>/not_uploaded.csv with the reason
    manifest = None if "://" in run.input_uri else \
        stage0.scan(run.input_uri, run.max_images, follow_links=run.follow_links, output_uri=run.output_uri,
                    video_sample=run.video_sample)
    if not emulated:
        est = estimate_for(run.input_uri, run.max_images, "aws", run.detector,  # budget prices auto for AWS
                           run.use_spot, run.instance_type, run.prices_uri, manifest=manifest,
                           classifier=run.classifier, expected_empty_share=run.expected_empty_share,
                           video_sample=run.video_sample)
        try:
            budget.guard(est, run.budget_dkk, run.max_job_duration)  # before anything is uploaded or started
        except budget.BudgetExceeded as exc:
            fail(EXIT_BUDGET, str(exc.args[0]), "Nothing was uploaded or started.")
    session = f"odin-{uuid.uuid4().hex[:12]}"
    s3, sfn = cloud.client("s3", target), cloud.client("stepfunctions", target)
    if not emulated:
        from wildlife import monthly_stop  # noqa: PLC0415

        monthly_stop.refuse_if_stopped(s3, outputs["bucket"])  # stopped this month: exit 3, nothing uploaded
    remote = f"s3://{outputs['bucket']}/input/{session}"
    local = {}  # the run's local files, uploaded: the execution input names their copies
    if manifest is not None:
        rows = manifest.to_pylist()
        photos = [(stage0.openable(r), r["relpath"]) for r in rows if r["status"] == "pending"]
        sent = cloud.upload(s3, Path(run.input_uri), f"{remote}/photos", files=photos)
        console.print(f"uploaded {sent} photo(s) to {remote}/photos")
        _not_uploaded([r for r in rows if r["status"] != "pending"], output_uri)
        local["input_uri"] = f"{remote}/photos"
    for key, name in (("deployments_uri", "deployments.csv"), ("prices_uri", "prices.yaml"),
                      ("project_uri", "project.yaml")):
        path = getattr(run, key)
        if path and "://" not in path:
            s3.upload_file(path, outputs["bucket"], f"input/{session}/{name}")
            local[key] = f"{remote}/{name}"
    run_uri = f"s3://{outputs['bucket']}/runs/{session}"
    run = run.replace(output_uri=run_uri, work_uri=f"s3://{outputs['bucket']}/tmp/{session}", **local)
    if emulated:
        from modules.emulated import LABEL  # noqa: PLC0415

        run = run.replace(emulated=LABEL)  # the run report and report.html say what did not run on AWS
    run_input = run.to_execution_input()
    machine = outputs["state_machine_arn"]
    if emulated:
        machine += _stand_in(target, run_input, session, machine)
    started = sfn.start_execution(stateMachineArn=machine, name=session, input=json.dumps(run_input))
    console.print(f"started {started['executionArn']}")
    final: dict = {}
    for step in cloud.follow(sfn, started["executionArn"], poll_s=0.5 if emulated else 2.0):
        if "state" in step:
            console.print(f"  {step['time']:%H:%M:%S}  {step['state']}")
        else:
            final = step
    if final["status"] != "SUCCEEDED":
        code = EXIT_BUDGET if final.get("error") == "BudgetExceeded" else EXIT_FAILED
        fail(code, f"run {session} ended {final['status']}: {final.get('error')} {final.get('cause') or ''}")
    got = cloud.download(s3, run_uri, Path(output_uri)) if "://" not in output_uri else []
    console.print(f"[bold green]done[/bold green] run {session}: {final.get('output')}")
    for path in got:
        console.print(f"  {path}")


def _not_uploaded(rows: list[dict], output_uri: str) -> None:
    """The input files a cloud run does not upload (not photos, beyond --max-images, unreadable), each with its
    reason, in ``<output>/not_uploaded.csv``: nothing under --input disappears from the run's outputs."""
    import csv  # noqa: PLC0415
    import io  # noqa: PLC0415

    from wildlife import fs  # noqa: PLC0415

    if not rows:
        return
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["relpath", "size", "status", "reason"])
    writer.writerows([r["relpath"], r["size"], r["status"], r["reason"]] for r in rows)
    uri = fs.join(output_uri, "not_uploaded.csv")
    fs.write_bytes(uri, text.getvalue().encode())
    console.print(f"{len(rows)} file(s) not uploaded (not photos, or beyond --max-images): {uri}")


def _stand_in(target: str, run_input: dict, session: str, machine_arn: str) -> str:
    """The emulator's missing Lambda and Batch tasks, played on this host; returns the mock test case's
    ARN suffix."""
    from modules import cloud, emulated  # noqa: PLC0415

    console.print(f"[yellow]emulated[/yellow]: {', '.join(emulated.LABEL['services'])} run on this host; the "
                  "emulator's state machine replays their results")
    mocks, state = emulated.stand_in(run_input, session)
    if state.get("error"):
        console.print(f"[yellow]a task failed here[/yellow] ({state['error']['Error']}); the state machine will "
                      "take its Catch path")
    mock_file = cloud.ROOT / cloud.profile(target)["sfn_mock_config"]
    return emulated.write_mock_config(mock_file, machine_arn.rsplit(":", 1)[1], session, mocks)


@click.command()
@click.option("--target", type=click.Choice(["aws", "localstack"]), default="aws", show_default=True)
@click.option("--limit", default=10, show_default=True)
def status(target, limit):
    """The deployed stack and its latest runs."""
    from modules import cloud  # noqa: PLC0415

    outputs = cloud.stack_outputs(target)  # NotDeployed says how to deploy
    console.print(f"bucket {outputs['bucket']}\nstate machine {outputs['state_machine_arn']}")
    runs = cloud.client("stepfunctions", target).list_executions(
        stateMachineArn=outputs["state_machine_arn"], maxResults=limit)["executions"]
    for r in runs:
        console.print(f"  {r['startDate']:%Y-%m-%d %H:%M}  {r['status']:<10} {r['name']}")
    if not runs:
        console.print("  no runs yet")


@click.command()
@click.option("--target", type=click.Choice(["aws", "localstack"]), default="aws", show_default=True)
@click.argument("session", required=False)
def logs(target, session):
    """A run's execution history (the latest run when none is named)."""
    from modules import cloud  # noqa: PLC0415

    arn = cloud.stack_outputs(target)["state_machine_arn"]
    sfn = cloud.client("stepfunctions", target)
    runs = sfn.list_executions(stateMachineArn=arn, maxResults=100)["executions"]
    chosen = [r for r in runs if session in (None, r["name"])][:1]
    if not chosen:
        fail(EXIT_USAGE, f"no run {session!r} on {arn}")
    for event in cloud.events_after(sfn, chosen[0]["executionArn"]):
        details = next((v for k, v in event.items() if k.endswith("EventDetails")), {})
        console.print(f"{event['timestamp']:%H:%M:%S} {event['type']:<28} {details.get('name', '')}"
                      f" {details.get('error', '')}")


# S3 and STS error codes that mean the user named the wrong thing or lacks the right to it
ACCESS_ERRORS = {"NoSuchBucket", "NoSuchKey", "AccessDenied", "403", "404", "InvalidAccessKeyId",
                 "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "AllAccessDisabled", "InvalidBucketName",
                 "PermanentRedirect", "AuthorizationHeaderMalformed"}


def explain(exc: BaseException) -> OdinError | None:
    """botocore's errors as what the user can do about them: credentials and access are the user's to fix
    (exit 2), a service that does not answer exit 1; None for anything else."""
    if not type(exc).__module__.startswith("botocore"):
        return None
    from botocore import exceptions as boto  # noqa: PLC0415

    if isinstance(exc, boto.NoCredentialsError | boto.PartialCredentialsError | boto.ProfileNotFound):
        return InputError(f"no usable AWS credentials: {exc}",
                          hint="Set AWS_PROFILE (after `aws configure` or `aws sso login`) or AWS_ACCESS_KEY_ID and "
                               "AWS_SECRET_ACCESS_KEY; for the emulator use --target localstack.")
    if isinstance(exc, boto.EndpointConnectionError | boto.ConnectTimeoutError | boto.ConnectionClosedError):
        return OdinError(f"the service does not answer: {exc}",
                         hint="For --target localstack start the emulator: `python scripts/localstack.py up`. "
                              "Otherwise check the network and AWS_ENDPOINT_URL.")
    if isinstance(exc, boto.ParamValidationError):
        return InputError(str(exc).replace("\n", " "))
    if isinstance(exc, boto.ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        message = f"{exc.operation_name}: {code}: {exc.response.get('Error', {}).get('Message', exc)}"
        if code in ACCESS_ERRORS:
            return InputError(message, hint="Check the bucket name, and that these credentials may use it "
                                            "(AWS_PROFILE, or --target localstack for the emulator).")
        return OdinError(message)
    return None


def _s3_uri(ctx, param, value: str) -> str:
    if not value.startswith("s3://") or not value[5:].split("/", 1)[0]:
        raise click.BadParameter(f"{value!r} is not an s3:// URI: give s3://bucket/prefix.")
    return value


@click.group()
def data() -> None:
    """Photos and results in the stack's bucket (URIs are s3://bucket/prefix)."""


@data.command("upload")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.argument("uri", callback=_s3_uri)
@click.option("--target", type=click.Choice(["aws", "localstack"]), default="aws", show_default=True)
def data_upload(folder, uri, target):
    """Upload FOLDER to URI (s3://bucket/prefix); files already there are skipped."""
    from pathlib import Path  # noqa: PLC0415

    from modules import cloud  # noqa: PLC0415

    sent = cloud.upload(cloud.client("s3", target), Path(folder), uri)
    console.print(f"uploaded {sent} file(s) to {uri}")


@data.command("download")
@click.argument("uri", callback=_s3_uri)
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--target", type=click.Choice(["aws", "localstack"]), default="aws", show_default=True)
def data_download(uri, folder, target):
    """Download a run's outputs (not its _run/ work files) from URI into FOLDER."""
    from pathlib import Path  # noqa: PLC0415

    from modules import cloud  # noqa: PLC0415

    got = cloud.download(cloud.client("s3", target), uri, Path(folder))
    console.print(f"downloaded {len(got)} file(s) to {folder}")


@data.command("list")
@click.argument("uri", callback=_s3_uri)
@click.option("--target", type=click.Choice(["aws", "localstack"]), default="aws", show_default=True)
def data_list(uri, target):
    """List objects under URI."""
    from modules import cloud  # noqa: PLC0415

    for key, size in cloud.listing(cloud.client("s3", target), uri):
        print(f"{size:>12}  {key}")


@click.group()
def cost() -> None:
    """What runs really cost."""


@cost.command("report")
@click.argument("session", required=False)
@click.option("--period", type=click.Choice(PERIODS), default=None,
              help="Every run in the bucket, summed per day, ISO week or month (instead of one SESSION).")
@click.option("--target", type=click.Choice(["aws", "localstack"]), default="aws", show_default=True)
@click.option("--instance-type", default=None, help="The instance type the jobs ran on (default: the run's, else "
              "the price table's).")
@click.option("--prices", "prices_uri", default=None)
def cost_report(session, period, target, instance_type, prices_uri):
    """Actual Stage 1 cost from Batch job durations: of one run next to its estimate, or per --period."""
    from modules import cloud  # noqa: PLC0415
    from wildlife import fs  # noqa: PLC0415

    if (session is None) == (period is None):
        raise InputError("cost report needs one SESSION or --period day|week|month",
                         hint="e.g. `scripts/run.py cost report --period month --target aws`")
    outputs = cloud.stack_outputs(target)  # NotDeployed says how to deploy
    prices = budget.load_prices(prices_uri)
    queues = outputs.get("job_queues") or ({"normal": outputs["job_queue"]} if outputs.get("job_queue") else {})
    batch = cloud.client("batch", target) if queues else None

    def cost_of(report):  # the run's jobs in whichever queue its --priority chose
        jobs = [j for q in queues.values() for j in cloud.batch_jobs(batch, q, report["session_id"])] \
            if batch else []
        return cloud.run_cost(report, jobs, prices, instance_type)

    if period:
        runs = [(report, cost_of(report)) for report in cloud.run_reports(cloud.client("s3", target),
                                                                           outputs["bucket"])]
        rows = cloud.cost_by_period(runs, period)
        print(f"{period:<10} {'runs':>5} {'ok':>4} {'inst-h':>8} {'measured DKK':>13} {'estimated DKK':>14}")
        for r in rows:
            note = f"  ({r['runs_at_estimate']} at estimate: Batch no longer lists their jobs)" \
                if r["runs_at_estimate"] else ""
            note += f"  ({r['runs_unpriced']} without a Stage 1 to price)" if r["runs_unpriced"] else ""
            print(f"{r['period']:<10} {r['runs']:>5} {r['succeeded']:>4} {r['instance_hours']:>8.2f} "
                  f"{r['measured_dkk']:>13.2f} {r['estimated_dkk']:>14.2f}{note}")
        if not rows:
            console.print(f"no run reports under s3://{outputs['bucket']}/runs/")
        return
    report = fs.read_json(f"s3://{outputs['bucket']}/runs/{session}/run_report.json")
    cost = cost_of(report)
    compute_est = cloud.compute_estimate(report)
    estimate = report.get("estimate") or {}
    console.print(f"run {session}: {cost['jobs']} Batch job(s), {cost['hours']:.2f} instance-hours of "
                  f"{cost['instance_type']} ({'spot' if cost['spot'] else 'on-demand'} {cost['usd_per_hour']} USD/h)"
                  f" = {cost['dkk']:.2f} DKK; estimated {compute_est if compute_est is not None else '?'} DKK for "
                  f"compute, {estimate.get('total_dkk', '?')} DKK in all")
