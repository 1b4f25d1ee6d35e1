"""The stage graph: the one definition of what runs, in which order, and where.

It also owns every name the state machine gives a task (``Stage.map_state``, ``shard_task``, ``summary_task``,
``FAILURE_REPORT``) and the list of Lambdas (``LAMBDAS``) that the stack deploys, the ASL points at and the
emulator stand-in plays, so adding a stage is one edit here (and its ``functions/<folder>/handler.py``).

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

    reads: tuple[str, ...] = ()  # the tables it reads, each written by an earlier stage (``table_uri``)
    writes: tuple[str, ...] = ()  # the tables it writes: its payload holds each as ``<table>_uri``
    collect: str | None = None  # batch stages: the function that gathers the shards' results on AWS
    fan_out: str | None = None  # on AWS, a Distributed Map runs this per shard before the stage merges them

    def load(self, which: str | None = None):
        module, func = (which or self.function).split(":")
        return getattr(importlib.import_module(module), func)

    # The state machine's names around this stage (wildlife.asl builds them, modules.emulated mocks them)
    @property
    def map_state(self) -> str:
        """The Distributed Map over the shards (``fan_out`` stages); also its Lambda's key in ``LAMBDAS``."""
        return f"{self.name}Shards"

    @property
    def shard_task(self) -> str:
        """The task inside that Map: one Lambda call per shard."""
        return f"{self.name}Shard"

    @property
    def summary_task(self) -> str:
        """Batch stages: the Lambda after the array job that gathers its shards (``collect``)."""
        return f"{self.name}Summary"

    @property
    def job_result(self) -> str:
        """Batch stages: where the state machine keeps the array job's answer."""
        return f"{self.name}Job"


GRAPH: tuple[Stage, ...] = (
    Stage("GuardBudget", "wildlife.stages:guard_budget", "lambda",
          "list the input, estimate cost and time, refuse a run over budget before any work",
          writes=("manifest",)),
    Stage("Stage0Exif", "wildlife.stages:stage0_exif", "lambda",
          "read headers without decoding pixels, assign deployments, fix clocks",
          reads=("manifest",), writes=("media",), fan_out="wildlife.stages:stage0_shard"),
    Stage("CostEstimation", "wildlife.stages:cost_estimation", "lambda",
          "re-estimate with the photos that survived Stage 0; refuse if now over budget", reads=("media",)),
    Stage("Stage1Detect", "wildlife.stages:stage1_detect", "batch",
          "animal/person/vehicle detection, sequences", reads=("media",), writes=("results",),
          collect="wildlife.stages:stage1_collect"),
    Stage("Stage2Events", "wildlife.stages:stage2_events", "lambda",
          "join media and detections, group photos into events", reads=("media", "results"),
          writes=("images", "detections", "events")),
    Stage("WeatherEnrichment", "wildlife.stages:weather_enrichment", "lambda",
          "weather for positive events", reads=("events", "media"), writes=("weather",)),
    Stage("WriteOutputs", "wildlife.stages:write_outputs", "lambda",
          "images/clusters/deployments Parquet, Camtrap DP and the run report",
          reads=("images", "detections", "events", "weather")),
)
WRITER = {table: s.name for s in GRAPH for table in s.writes}  # each table's one writer


def table_uri(state: dict, name: str) -> str | None:
    """Where the run's table ``name`` is: the URI its writer's payload gives (None: not written, as the
    weather of a run with ``--weather-provider none``)."""
    return (state.get(WRITER[name]) or {}).get(f"{name}_uri")

BUDGET_STAGES = ("GuardBudget", "CostEstimation")  # their BudgetExceeded ends the run in FailBudget


FAILURE_REPORT = "WriteFailureReport"  # the Catch path's Lambda: writes run_report.json with the error


@dataclass(frozen=True)
class LambdaTask:
    """One deployed Lambda: its key (the state machine's name for it), the stage whose payload it makes
    (None for the failure report) and the function it runs; ``functions/<folder>/handler.py`` is its handler."""

    key: str
    stage: str | None
    function: str  # "module:function"

    @property
    def folder(self) -> str:
        return self.function.split(":")[1]


def _lambdas() -> tuple[LambdaTask, ...]:
    tasks = []
    for s in GRAPH:
        if s.fan_out:
            tasks.append(LambdaTask(s.map_state, s.name, s.fan_out))
        tasks.append(LambdaTask(s.name, s.name, s.collect if s.runs_on == "batch" else s.function))
    return (*tasks, LambdaTask(FAILURE_REPORT, None, "runtimes.lambda_adapter:failure_report"))


LAMBDAS: tuple[LambdaTask, ...] = _lambdas()  # every Lambda, in state-machine order


def stage(name: str) -> Stage:
    for s in GRAPH:
        if s.name == name:
            return s
    raise KeyError(name)
