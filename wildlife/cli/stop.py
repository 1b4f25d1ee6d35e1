"""``odin budget``: the monthly stop (``wildlife.monthly_stop``) seen and lifted from the command line."""

from __future__ import annotations

import datetime as dt

import click

from wildlife.progress import console

_target = click.option("--target", type=click.Choice(["aws"]), default="aws", show_default=True,
                       help="The deployed stack (the emulator has no Batch and no Budgets to stop).")


@click.group("budget")
def budget_group() -> None:
    """The stack's monthly budget stop: at 100% of monitoring.monthly_budget_dkk it stops spending."""


@budget_group.command("status")
@_target
def budget_status(target):
    """Whether the stack is stopped for this month, and why."""
    from modules import cloud  # noqa: PLC0415
    from wildlife import monthly_stop  # noqa: PLC0415

    marker = monthly_stop.read_marker(cloud.client("s3", target), cloud.stack_outputs(target)["bucket"])
    if monthly_stop.stopped(marker, dt.datetime.now(dt.UTC)):
        console.print(f"[red bold]stopped[/red bold] since {marker['stopped_at']}: {marker['budget']} reached "
                      f"({marker['actual_usd']:.2f} of {marker['budgeted_usd']:.2f} USD)")
    else:
        console.print("running: the monthly budget has not stopped the stack this month")


@budget_group.command("resume")
@_target
def budget_resume(target):
    """Lift this month's stop now: restore the profile's vCPUs on every compute environment and let runs start."""
    from modules import cloud  # noqa: PLC0415
    from wildlife import monthly_stop  # noqa: PLC0415

    profile = cloud.profile(target)
    envs = monthly_stop.environments(profile["name"], profile["compute"])
    marker = monthly_stop.resume(cloud.client("batch", target), cloud.client("s3", target),
                                 bucket=cloud.stack_outputs(target)["bucket"], envs=envs,
                                 now=dt.datetime.now(dt.UTC), by="scripts/run.py budget resume")
    sizes = ", ".join(f"{n} up to {v['max_vcpus']} vCPUs" for n, v in envs.items())
    console.print(f"resumed: {sizes}; new runs may start ({marker['resumed_at']})")
