"""``cost optimize``: every way to run an input on AWS (instance type x spot/on-demand x ``--speed`` preset),
each priced and timed by ``budget.estimate`` (the estimate every run is guarded by), and the cheapest that meets
a budget and a deadline."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from wildlife import budget
from wildlife.detect.catalog import STOCK_IMAGE_MODEL
from wildlife.presets import PRESETS
from wildlife.runinput import RunInput


@dataclass(frozen=True)
class Option:
    instance_type: str
    use_spot: bool
    preset: str
    estimate: budget.Estimate
    within_budget: bool
    within_deadline: bool

    @property
    def in_stock_image(self) -> bool:
        """Whether the stock AWS image holds the preset's model (else it needs an image built with it)."""
        return PRESETS[self.preset].model == STOCK_IMAGE_MODEL

    @property
    def feasible(self) -> bool:
        return self.within_budget and self.within_deadline and self.in_stock_image


def options(photos: int, total_bytes: int, prices: dict[str, Any], budget_dkk: float, deadline_s: float | None,
            presets: tuple[str, ...] = tuple(PRESETS), classifier: str = RunInput.default("classifier"),
            expected_empty_share: float | None = None) -> list[Option]:
    """Every instance type of the price table x spot and on-demand x each of ``presets``, in that order; each
    with the species classification ``run`` would price (``--classifier``, default auto)."""
    out = []
    for itype in prices["instances"]:
        for spot in (True, False):
            for name in presets:
                est = budget.estimate(photos, total_bytes, target="aws", detector=PRESETS[name].model, use_spot=spot,
                                      instance_type=itype, prices=prices, classifier=classifier,
                                      expected_empty_share=expected_empty_share)
                out.append(Option(itype, spot, name, est, est.total_dkk <= budget_dkk,
                                  deadline_s is None or est.wall_time_s <= deadline_s))
    return out


def cheapest(candidates: list[Option]) -> Option | None:
    """The cheapest feasible option (the faster of equal costs), or None when none is feasible."""
    feasible = [o for o in candidates if o.feasible]
    return min(feasible, key=lambda o: (o.estimate.total_dkk, o.estimate.wall_time_s), default=None)


def run_command(option: Option, input_uri: str, output_uri: str | None, budget_dkk: float,
                deadline_s: float | None, prices_uri: str | None) -> str:
    """The ``run`` command that uses ``option``, with the same budget and the deadline as its time limit."""
    parts = ["scripts/run.py run --target aws", f"--input {shlex.quote(input_uri)}",
             f"--output {shlex.quote(output_uri) if output_uri else 'OUTPUT'}",
             f"--budget {budget_dkk:g}", f"--speed {option.preset}", f"--instance-type {option.instance_type}",
             "--use-spot" if option.use_spot else "--no-spot"]
    if deadline_s is not None:
        parts.append(f"--max-job-duration {deadline_s:g}")
    if prices_uri:
        parts.append(f"--prices {shlex.quote(prices_uri)}")
    return " ".join(parts)
