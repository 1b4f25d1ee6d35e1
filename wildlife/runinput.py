"""The run input: the one definition of a run's parameters, their defaults, which may change on ``--resume``,
and how they travel as the state machine's execution input.

The CLI builds one ``RunInput`` for every target. Locally it becomes ``state["params"]``; on AWS (and the
emulator) it is the execution input (the original design's JSON: ``input_uri``, ``output_uri``,
``budget_dkk``, ...), and every Lambda reads it back with ``from_execution_input``. A key is the same name in
all three places, so a new option is one field here (and its click option, which a test holds to this).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from wildlife.asl import DEFAULT_PRIORITY
from wildlife.errors import InputError

HUMANS = ("blur", "drop", "keep")  # --humans: what happens to people and vehicles in what Odin writes


def _f(default: Any, help: str, *, changeable: bool = False, first_read_by: str | None = None):
    """A field: ``changeable`` on ``--resume``; ``first_read_by``: the first stage that reads it, from which
    ``scripts/run.py stage`` may re-run a finished run with another value."""
    return field(default=default, metadata={"help": help, "changeable": changeable, "first_read_by": first_read_by})


@dataclass(frozen=True)
class RunInput:
    input_uri: str = _f(None, "Folder or s3:// prefix of photos and videos.")
    output_uri: str = _f(None, "Folder or s3:// prefix for the results.")
    budget_dkk: float = _f(None, "Hard budget in DKK.", changeable=True)
    target: str = _f("local", "Where to run: this machine, LocalStack, or AWS.")
    use_spot: bool = _f(True, "Price GPU compute as spot (AWS targets).", changeable=True)
    max_images: int | None = _f(None, "Process only the first N photos in path order; the rest are listed as skipped.")
    max_job_duration: float | None = _f(None, "Wall-time limit in seconds; refused up front if the estimate is longer.",
                                           changeable=True)
    detector: str = _f("auto", "motion, megadetector, auto (MegaDetector if available, else motion) or a "
                             "model path.")
    instance_type: str | None = _f(None, "Batch instance type for the AWS estimate.")
    prices_uri: str | None = _f(None, "Price table overriding Odin's own (wildlife/prices.yaml, installed with "
                                      "the package).")
    deployments_uri: str | None = _f(None, "Deployments CSV (Camtrap DP columns + timezone, clockOffset). "
                                   "Default: one per top folder.")
    weather_days_back: int = _f(0, "Days of weather before each event to add (weather stage).",
                                first_read_by="WeatherEnrichment")
    weather_provider: str = _f("open-meteo", "Weather for positive events: Open-Meteo archive, MET Norway "
                               "Frost (needs FROST_CLIENT_ID), or none.",
                               changeable=True, first_read_by="WeatherEnrichment")
    independence_s: float = _f(1800.0, "Seconds between independent records per deployment and taxon (species, or "
                               "category where no classifier ran).",
                               first_read_by="Stage2Events")
    sequence_gap_s: float = _f(60.0, "Seconds between photos that start a new sequence.", first_read_by="Stage1Detect")
    events_method: str = _f("gap", "How photos become events: a fixed --event-gap (the field's convention) or "
                            "HDBSCAN.", first_read_by="Stage2Events")
    event_gap_s: float = _f(120.0, "Seconds between consecutive photos of a deployment that start a new event.",
                            first_read_by="Stage2Events")
    conf_threshold: float = _f(0.2, "Detections at or above this confidence count as positive.",
                               first_read_by="Stage2Events")
    follow_links: bool = _f(False, "Follow symbolic links to folders inside --input (never outside it, never "
                                "round a loop). Without it they are listed as skipped.")
    classifier: str = _f("auto", "Species classifier: auto (SpeciesNet when cached, else none), speciesnet, a "
                         "PATH.onnx with its .json sidecar, or none (detections only).", first_read_by="Stage1Detect")
    country: str | None = _f(None, "ISO 3166-1 alpha-3 country (e.g. DNK) or first-level region (US-WY) for the "
                             "species geofence, overriding "
                             "the one found from each deployment's location (deployments.csv column country "
                             "overrides per deployment).", first_read_by="Stage2Events")
    expected_empty_share: float = _f(0.7, "Share of photos expected to hold no animal, for the estimate of "
                                     "classification cost (camera-trap cards are mostly empty).", changeable=True)
    speed: str | None = _f(None, "Preset choosing the detector: accurate, balanced or fast (overrides --detector).")
    video_sample: str = _f("1s", "Frames of a video to run: every N seconds ('1s', '0.5s') or every N frames "
                           "('30f'). The budget guard counts a video as these frames, so it is read from there on.",
                           first_read_by="GuardBudget")
    humans: str = _f("blur", "People and vehicles in images Odin writes: blur, drop (left out of the shared "
                     "package) or keep.", first_read_by="WriteOutputs")
    occasion_days: int = _f(7, "Days per occasion in the detection histories for occupancy models.",
                            first_read_by="WriteOutputs")
    project_uri: str | None = _f(None, "Project file (YAML: title, contributors, licence, rights holder, "
                                 "citation, coordinate precision) for datapackage.json.", first_read_by="WriteOutputs")
    priority: str = _f(DEFAULT_PRIORITY, "AWS: the Batch job queue Stage 1 waits in (high, normal, low); higher queues "
                       "are served first when capacity is short. A local run ignores it.", changeable=True)
    # set by the cloud path, never by a user
    work_uri: str | None = _f(None, "Where work files go (AWS: the bucket's tmp/, which expires).")
    emulated: dict | None = _f(None, "On an emulator: what did not really run where the report says.")  # noqa: RUF009 - a field(), default None

    REQUIRED = ("input_uri", "output_uri", "budget_dkk")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def changeable_on_resume(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls) if f.metadata["changeable"])

    @classmethod
    def field(cls, name: str) -> dataclasses.Field:
        return {f.name: f for f in dataclasses.fields(cls)}[name]

    @classmethod
    def first_read_by(cls, name: str) -> str | None:
        return {f.name: f.metadata["first_read_by"] for f in dataclasses.fields(cls)}[name]

    @classmethod
    def default(cls, name: str) -> Any:
        return {f.name: f.default for f in dataclasses.fields(cls)}[name]

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> RunInput:
        """From the CLI's keyword arguments (others, like ``resume``, are not the run's and are left out)."""
        return cls(**{k: v for k, v in options.items() if k in cls.names()})

    @classmethod
    def from_execution_input(cls, run_input: dict[str, Any], target: str = "aws") -> RunInput:
        """The Lambda's view: the execution input with defaults filled in (``target`` when it names none);
        keys that are not the run's (the stages' payloads, ``error``) are ignored."""
        missing = [k for k in cls.REQUIRED if run_input.get(k) in (None, "")]
        if missing:
            raise InputError(f"the run input lacks {missing}; it needs input_uri, output_uri and budget_dkk")
        known = {k: run_input[k] for k in cls.names() if k in run_input}
        known.setdefault("target", target)
        known["budget_dkk"] = float(known["budget_dkk"])
        return cls(**known)

    def to_execution_input(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def params(self) -> dict[str, Any]:
        """``state["params"]``: what every stage reads."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> RunInput:
        return dataclasses.replace(self, **changes)
