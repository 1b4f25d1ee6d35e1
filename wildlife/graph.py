"""The stage graph: the one definition of what runs, in which order, and where.

The local runner walks it; the AWS workflow module turns the same list into Step Functions ASL. Each
stage is a plain function ``fn(state, ctx) -> payload`` in ``wildlife.stages``; a payload is small JSON
(URIs and counts) stored under the stage's name in the run state, never bulk data.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    name: str
    function: str  # "module:function"
    runs_on: str  # "lambda" (light, per run or per shard) or "batch" (GPU/CPU container)
    summary: str

    collect: str | None = None  # batch stages: the function that gathers the shards' results on AWS
    fan_out: str | None = None  # on AWS, a Distributed Map runs this per shard before the stage merges them

    def load(self, which: str | None = None):
        module, func = (which or self.function).split(":")
        return getattr(importlib.import_module(module), func)


GRAPH: tuple[Stage, ...] = (
    Stage("GuardBudget", "wildlife.stages:guard_budget", "lambda",
          "list the input, estimate cost and time, refuse a run over budget before any work"),
    Stage("Stage0Exif", "wildlife.stages:stage0_exif", "lambda",
          "read headers without decoding pixels, assign deployments, fix clocks",
          fan_out="wildlife.stages:stage0_shard"),
    Stage("CostEstimation", "wildlife.stages:cost_estimation", "lambda",
          "re-estimate with the photos that survived Stage 0; refuse if now over budget"),
    Stage("Stage1Detect", "wildlife.stages:stage1_detect", "batch",
          "animal/person/vehicle detection", collect="wildlife.stages:stage1_collect"),
    Stage("Stage2Events", "wildlife.stages:stage2_events", "lambda",
          "group photos into sequences and events"),
    Stage("WeatherEnrichment", "wildlife.stages:weather_enrichment", "lambda",
          "weather for positive events"),
    Stage("WriteOutputs", "wildlife.stages:write_outputs", "lambda",
          "images/detections/clusters Parquet and the run report"),
)

BUDGET_STAGES = ("GuardBudget", "CostEstimation")  # their BudgetExceeded ends the run in FailBudget


def stage(name: str) -> Stage:
    for s in GRAPH:
        if s.name == name:
            return s
    raise KeyError(name)
