"""``odin cost optimize``: the cheapest way to run an input on AWS within a budget and a deadline (offline: the
price table and the input's photo count; ``wildlife.costopt``)."""

from __future__ import annotations

import re

import click

from wildlife.cli.common import EXIT_BUDGET, EXIT_USAGE, Number, fail
from wildlife.presets import NAMES
from wildlife.progress import console

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class Duration(click.ParamType):
    """A time span: seconds, or a number with s, m, h or d (``90m``, ``2h``, ``1.5d``)."""

    name = "duration"

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)):
            return float(value)
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(value).lower())
        if not match or float(match[1]) <= 0:
            self.fail(f"{value!r} is not a duration: give seconds or a number with s, m, h or d (e.g. 2h).",
                      param, ctx)
        return float(match[1]) * _UNITS[match[2] or "s"]


@click.command("optimize")
@click.option("--input", "input_uri", required=True, help="Folder or s3:// prefix of photos (counted, not read).")
@click.option("--budget", "budget_dkk", type=Number(min=0), required=True, help="Hard budget in DKK.")
@click.option("--deadline", "deadline_s", type=Duration(), default=None,
              help="Longest acceptable wall time: seconds, or 90m, 2h, 1d.")
@click.option("--max-images", type=click.IntRange(min=1), default=None, help="Count only the first N photos.")
@click.option("--speed", "speeds", type=click.Choice(NAMES), multiple=True,
              help="Consider only these presets (repeatable); default: all.")
@click.option("--output", "output_uri", default=None, help="Put into the printed run command.")
@click.option("--prices", "prices_uri", default=None, help="Price table overriding Odin's own.")
def optimize(input_uri, budget_dkk, deadline_s, max_images, speeds, output_uri, prices_uri):
    """Every instance type x spot/on-demand x --speed preset for this input: estimated wall time and DKK; marks
    the cheapest that meets --budget and --deadline and prints the run command that uses it (exit 3 if none)."""
    from wildlife import budget, costopt, presets, stage0  # noqa: PLC0415

    try:
        manifest = stage0.scan(input_uri, max_images)
    except FileNotFoundError as exc:
        fail(EXIT_USAGE, f"{exc}. Check --input.")
    pending = [r for r in manifest.to_pylist() if r["status"] == "pending"]
    prices = budget.load_prices(prices_uri)
    try:
        rows = costopt.options(len(pending), sum(r["size"] for r in pending), prices, budget_dkk, deadline_s,
                               tuple(speeds) or presets.NAMES)
    except ValueError as exc:  # a price table without a rate for a preset's model
        fail(EXIT_USAGE, str(exc), "Check --prices.")
    best = costopt.cheapest(rows)
    limit = f"budget {budget_dkk:g} DKK" + (f", deadline {deadline_s:,.0f} s" if deadline_s is not None else "")
    console.print(f"{len(pending)} photos; prices as of {prices['as_of']}; {limit}")
    console.print(f"  {'':2}{'preset':<9} {'instance':<13} {'capacity':<10} {'jobs':>4} {'wall time':>10} "
                  f"{'DKK':>9}  fits")
    order = [best.preset] if best else []
    order += [n for n in presets.NAMES if n not in order]
    for o in sorted(rows, key=lambda o: (order.index(o.preset), o.estimate.total_dkk, o.estimate.wall_time_s)):
        fits = "yes" if o.feasible else ", ".join(
            [w for w, ok in (("over budget", o.within_budget), ("too slow", o.within_deadline),
                             (f"needs an image built with MODEL={presets.PRESETS[o.preset].model}", o.in_stock_image))
             if not ok])
        console.print(f"  {'*' if o is best else ' ':2}{o.preset:<9} {o.instance_type:<13} "
                      f"{'spot' if o.use_spot else 'on-demand':<10} {o.estimate.rates['parallel_jobs']:>4} "
                      f"{o.estimate.wall_time_s:>9,.0f}s {o.estimate.total_dkk:>9.2f}  {fits}")
    if best is None:
        cheap = min(rows, key=lambda o: o.estimate.total_dkk)
        fast = min(rows, key=lambda o: o.estimate.wall_time_s)
        fail(EXIT_BUDGET, f"no option meets the {limit}: the cheapest costs {cheap.estimate.total_dkk:.2f} DKK "
                          f"({cheap.preset}, {cheap.instance_type}), the fastest takes "
                          f"{fast.estimate.wall_time_s:,.0f} s ({fast.preset}, {fast.instance_type}).",
             "Raise --budget or --deadline, or cap the input with --max-images.")
    console.print(f"[green]cheapest within the {limit}[/green]: {presets.describe(best.preset)}, "
                  f"{best.instance_type} {'spot' if best.use_spot else 'on-demand'}: "
                  f"{best.estimate.total_dkk:.2f} DKK, about {best.estimate.wall_time_s:,.0f} s", soft_wrap=True)
    for name in sorted({o.preset for o in rows} - {best.preset}):
        other = costopt.cheapest([o for o in rows if o.preset == name])
        if other:
            console.print(f"  for {name}: {other.instance_type} {'spot' if other.use_spot else 'on-demand'}, "
                          f"{other.estimate.total_dkk:.2f} DKK, about {other.estimate.wall_time_s:,.0f} s")
    print(costopt.run_command(best, input_uri, output_uri, budget_dkk, deadline_s, prices_uri))
