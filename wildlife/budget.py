"""The cost model and the budget guard, in DKK, from a dated price table (``wildlife/prices.yaml``)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import yaml

from wildlife import detect, fs
from wildlife.errors import InputError, OdinError
from wildlife.runinput import RunInput

# the design's bound on a run: the state machine's total TimeoutSeconds unless the profile sets
# workflow.timeout_s, and Stage 1's own limit unless the run gives --max-job-duration
DEFAULT_MAX_JOB_DURATION_S = 2 * 3600
DEFAULT_PRICES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "prices.yaml")  # package data
PHOTOS_PER_SHARD = 2000  # per Batch array child: ~5 min of MDv5 on a g4dn, so a spot reclaim loses little
MAX_ARRAY_SIZE = 10_000  # AWS Batch's limit on an array job's size


def array_size(photos: int) -> int:
    """How many children Stage 1's Batch array job has for ``photos`` photos (at least 2: Batch's minimum)."""
    return min(MAX_ARRAY_SIZE, max(2, math.ceil(photos / PHOTOS_PER_SHARD)))


class BudgetExceeded(OdinError):
    """The estimate is over the budget (money or time); the message says what to change."""

    exit_code = 3


@dataclass
class Estimate:
    target: str
    photos: int
    instance_type: str | None
    use_spot: bool
    lines: list[tuple[str, str, float]] = field(default_factory=list)  # (item, how it was computed, DKK)
    wall_time_s: float = 0.0
    prices_as_of: str = ""
    detector: str = ""  # the family that will really run: ``auto`` resolved (``detect.resolve``)
    rates: dict[str, Any] = field(default_factory=dict)  # stage -> {ms_per_photo, photos_timed, source}
    total_bytes: int = 0  # of the photos, which the S3 line prices
    classifier: str = "none"  # --classifier and --expected-empty-share as given (other estimates reuse them)
    expected_empty_share: float | None = None

    @property
    def total_dkk(self) -> float:
        return round(sum(dkk for _, _, dkk in self.lines), 2)

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "photos": self.photos,
            "instance_type": self.instance_type,
            "use_spot": self.use_spot,
            "total_dkk": self.total_dkk,
            "wall_time_s": round(self.wall_time_s, 2),
            "prices_as_of": self.prices_as_of,
            "detector": self.detector,
            "rates": self.rates,
            "lines": [{"item": i, "basis": b, "dkk": round(d, 4)} for i, b, d in self.lines],
        }


def load_prices(uri: str | None = None) -> dict[str, Any]:
    try:
        prices = yaml.safe_load(fs.read_bytes(uri or DEFAULT_PRICES))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"price table {uri or DEFAULT_PRICES}: {exc}", hint="Check --prices.") from exc
    for key in ("as_of", "usd_to_dkk", "instances", "lambda", "step_functions", "s3", "local"):
        if not isinstance(prices, dict) or key not in prices:
            raise InputError(f"price table {uri or DEFAULT_PRICES} lacks the key {key!r}", hint="Check --prices.")
    return prices


def _family(target: str, detector: str) -> str:
    """The detector that will run: ``auto`` resolved here for this machine; AWS images bake MegaDetector in."""
    if target == "local":
        return detect.resolve(detector)
    return "megadetector" if detector == "auto" else detect.resolve(detector)


def classifier_family(target: str, classifier: str, detector_family: str) -> str | None:
    """The classifier a run will use, in the price table's families (``speciesnet``), or None where none will.

    ``none`` and the motion baseline (its boxes are moving pixels, not animals: Stage 1 classifies none) add
    nothing. ``auto`` is SpeciesNet when it is in this machine's model cache (``models fetch speciesnet``), as
    Stage 1 decides; on AWS it is priced as running (an upper bound: the image may lack it). A model path is
    priced as SpeciesNet, an EfficientNetV2-M at 480 px: heavier than most regional models."""
    if classifier in (None, "", "none") or detector_family == "motion":
        return None
    if classifier == "auto" and target == "local":
        from wildlife.classify.runtime import SPECIESNET, speciesnet_path  # noqa: PLC0415

        return SPECIESNET if speciesnet_path().exists() else None
    return "speciesnet"  # the price table's family


def expected_crops(photos: int, empty_share: float, per_positive_photo: float) -> int:
    """Animal boxes the classifier will see: photos x (1 - expected empty share) x boxes per positive photo."""
    if not 0 <= empty_share <= 1:
        raise InputError(f"--expected-empty-share {empty_share!r}: must be a share between 0 and 1",
                         hint="0.7 means 7 in 10 photos are expected to hold no animal.")
    return math.ceil(round(photos * (1 - empty_share) * per_positive_photo, 6))  # 0.3 x 1.5 is not exact


def _with_classification(est: Estimate, p: dict[str, Any], classifier: str, empty_share: float | None,
                         usd_per_hour: float = 0.0) -> Estimate:
    """``est`` with the classifier's line, time and rate added where a classifier will run (on AWS in Stage 1's
    Batch job: instance time at ``usd_per_hour``, no second start; locally wall time only)."""
    est.classifier, est.expected_empty_share = classifier, empty_share
    which = classifier_family(est.target, classifier, est.detector)
    if which is None:
        return est
    if empty_share is None:
        empty_share = RunInput.default("expected_empty_share")
    crops, ms_crop = _classification(p, est.target, which, est.photos, empty_share, est.instance_type)
    seconds = crops * ms_crop / 1000
    est.wall_time_s += seconds / est.rates.get("parallel_jobs", 1)  # Stage 1's children, where they run side by side
    capacity = "spot" if est.use_spot else "on-demand"
    where = "this machine" if est.target == "local" else f"{est.instance_type}, {capacity}"
    est.rates["classifier"] = {"name": which, "ms_per_crop": ms_crop, "crops": crops,
                               "source": f"price table as of {p['as_of']}, {where}"}
    basis = f"{crops} expected animal boxes x {ms_crop:g} ms" + (f" at {usd_per_hour} USD/h" if usd_per_hour
                                                                   else ", no cloud charges")
    est.lines.append((f"classification ({which}, {where})", basis,
                      seconds / 3600 * usd_per_hour * float(p["usd_to_dkk"])))
    return est


def _classification(p: dict[str, Any], target: str, which: str, photos: int, empty_share: float,
                    itype: str | None) -> tuple[int, float]:
    """(expected crops, ms per crop) for classifier family ``which``: the machine's MegaDetector rate (an
    instance's, or ``local``'s) divided by the classifier's ``classification.model_speed`` (how many crops it
    classifies in the time MegaDetector v5 takes for one photo)."""
    table = p.get("classification")
    if not isinstance(table, dict) or "detections_per_positive_photo" not in table:
        raise InputError("the price table has no 'classification' section (detections_per_positive_photo and "
                         "model_speed), so a species classifier cannot be priced",
                         hint="Add it (see wildlife/prices.yaml), or run with --classifier none.")
    speed = (table.get("model_speed") or {}).get(which)
    rates = p["local"]["ms_per_photo"] if target == "local" else p["instances"][itype]["ms_per_photo"]
    if not speed or "megadetector" not in rates:
        raise InputError(f"the price table cannot rate {which} on {'this machine' if target == 'local' else itype}: "
                         f"it needs classification.model_speed.{which} and a megadetector ms_per_photo there",
                         hint="Add them, or run with --classifier none.")
    crops = expected_crops(photos, empty_share, float(table["detections_per_positive_photo"]))
    return crops, float(rates["megadetector"]) / float(speed)


def _table_rate(ms: float, source: str) -> dict[str, Any]:
    return {"ms_per_photo": float(ms), "photos_timed": 0, "source": source}


def detector_ms(rates: dict[str, Any], family: str, prices: dict[str, Any]) -> tuple[float, str]:
    """A family's ms per photo from a row of the price table's rates (an instance's, or ``local``'s): its own
    when the row has one, else MegaDetector's divided by the family's ``model_speed``; and how it was found."""
    if family in rates:
        return float(rates[family]), ""
    speed = (prices.get("model_speed") or {}).get(family)
    if not speed:
        raise ValueError(f"the price table rates no {family!r} model: give it a model_speed.{family} (how many "
                         "times faster than MegaDetector v5 it runs), or an ms_per_photo of its own")
    return float(rates["megadetector"]) / float(speed), f"; MegaDetector's rate / {speed:g} (model_speed.{family})"


def estimate(
    photos: int,
    total_bytes: int,
    *,
    target: str,
    detector: str,
    use_spot: bool = True,
    instance_type: str | None = None,
    prices: dict[str, Any] | None = None,
    measured: dict[str, Any] | None = None,
    classifier: str = "none",
    expected_empty_share: float | None = None,
) -> Estimate:
    """What a run of ``photos`` photos will cost and how long it will take on ``target``.

    ``measured`` (``calibration.calibrate``) gives this machine's rates for a local run; without it, or when
    it says ``skipped``, the price table's rates serve and the estimate's ``rates`` say so and why.
    Classification (``classifier``, ``--classifier``) adds its time per expected animal box
    (``expected_crops``), on the same machine as detection, where a classifier will run.
    """
    p = prices or load_prices()
    fx = float(p["usd_to_dkk"])
    family = _family(target, detector)
    if target == "local":
        measured = measured or {}
        if "detector" in measured:
            rates = {"stage0": measured["stage0"], "detector": dict(measured["detector"], name=family)}
        else:
            source = f"price table as of {p['as_of']}" + (f"; {measured['skipped']}" if "skipped" in measured else "")
            ms = p["local"]["ms_per_photo"]
            det_ms, how = detector_ms(ms, family, p)
            rates = {"stage0": _table_rate(ms["stage0"], source),
                     "detector": dict(_table_rate(det_ms, source + how), name=family)}
        setups = p["local"].get("setup_s", {})
        setup = float(measured["setup_s"]) if "setup_s" in measured else \
            float(setups.get(family, setups.get("megadetector", 0.0) if family != "motion" else 0.0))
        rates["setup_s"] = setup
        wall = setup + photos * (rates["stage0"]["ms_per_photo"] + rates["detector"]["ms_per_photo"]) / 1000
        est = Estimate(target, photos, None, use_spot, wall_time_s=wall, prices_as_of=p["as_of"], detector=family,
                       rates=rates, total_bytes=total_bytes)
        est.lines.append(("compute (this machine)", f"{photos} photos, no cloud charges", 0.0))
        return _with_classification(est, p, classifier, expected_empty_share)

    itype = instance_type or p["default_instance"]
    if itype not in p["instances"]:
        raise ValueError(f"unknown instance type {itype!r}; the price table knows {sorted(p['instances'])}")
    inst = p["instances"][itype]
    rate = float(inst["spot" if use_spot else "on_demand"])
    ms, how = detector_ms(inst["ms_per_photo"], family, p)
    gpu_s = photos * ms / 1000 + float(p["batch_job_overhead_s"])
    # Stage 1's array children run side by side, as many as the compute environment's vCPUs allow
    parallel = max(1, min(array_size(photos), int(p.get("batch_max_vcpus", 0)) // int(inst.get("vcpus", 1) or 1)))
    source = f"price table as of {p['as_of']}, {itype}{how}"
    est = Estimate(target, photos, itype, use_spot, prices_as_of=p["as_of"], detector=family, total_bytes=total_bytes,
                   rates={
        "stage0": _table_rate(p["lambda"]["ms_per_photo"], f"price table as of {p['as_of']}, Lambda"),
        "detector": dict(_table_rate(ms, source), name=family), "setup_s": float(p["batch_job_overhead_s"]),
        "parallel_jobs": parallel})
    est.lines.append((
        f"compute ({itype}, {'spot' if use_spot else 'on-demand'})",
        f"{photos} photos x {ms:g} ms + {p['batch_job_overhead_s']} s start at {rate} USD/h",
        gpu_s / 3600 * rate * fx,
    ))
    lam = p["lambda"]
    invocations = int(lam["invocations_per_run"]) + math.ceil(photos / int(lam["photos_per_invocation"]))
    gb_s = photos * float(lam["ms_per_photo"]) / 1000 * float(lam["memory_gb"])
    est.lines.append((
        "Lambda",
        f"{invocations} invocations, {gb_s:.0f} GB-s",
        (gb_s * float(lam["usd_per_gb_second"]) + invocations * float(lam["usd_per_million_requests"]) / 1e6) * fx,
    ))
    sfn = p["step_functions"]
    transitions = int(sfn["transitions_per_run"]) + int(sfn["transitions_per_shard"]) * math.ceil(
        photos / int(sfn["photos_per_shard"])
    )
    est.lines.append((
        "Step Functions",
        f"{transitions} state transitions",
        transitions / 1000 * float(sfn["usd_per_1000_transitions"]) * fx,
    ))
    s3 = p["s3"]
    requests = photos * int(s3["requests_per_photo"])
    gb = total_bytes / 1e9
    est.lines.append((
        "S3",
        f"{gb:.2f} GB for {s3['months_stored']} month(s), {requests} requests",
        (gb * float(s3["usd_per_gb_month"]) * float(s3["months_stored"])
         + photos / 1000 * float(s3["usd_per_1000_put"])
         + (requests - photos) / 1000 * float(s3["usd_per_1000_get"])) * fx,
    ))
    est.wall_time_s = float(p["batch_job_overhead_s"]) + photos * ms / 1000 / parallel \
        + photos * float(lam["ms_per_photo"]) / 1000
    return _with_classification(est, p, classifier, expected_empty_share, usd_per_hour=rate)


def guard(est: Estimate, budget_dkk: float, max_job_duration_s: float | None) -> None:
    """Refuse a run whose estimate is over the money or time budget, saying what to change."""
    for name, value in (("--budget", budget_dkk), ("--max-job-duration", max_job_duration_s)):
        if value is not None and not 0 <= value < math.inf:  # NaN compares false with everything
            raise InputError(f"{name} {value!r}: must be a finite number >= 0")
    if est.total_dkk > budget_dkk:
        per_photo = est.total_dkk / max(est.photos, 1)
        affordable = int(budget_dkk / per_photo) if per_photo > 0 else est.photos
        fixes = [f"raise --budget to at least {math.ceil(est.total_dkk)}"]
        if 0 < affordable < est.photos:
            fixes.append(f"cap the input with --max-images {affordable}")
        if not est.use_spot:
            fixes.append("use spot capacity (--use-spot)")
        raise BudgetExceeded(
            f"estimated cost {est.total_dkk:.2f} DKK for {est.photos} photos on {est.target} exceeds the "
            f"budget of {budget_dkk:g} DKK. To go ahead: {', or '.join(fixes)}. "
            "`scripts/run.py estimate` prints the breakdown."
        )
    if max_job_duration_s and est.wall_time_s > max_job_duration_s:
        raise BudgetExceeded(
            f"estimated wall time {est.wall_time_s:.0f} s for {est.photos} photos exceeds "
            f"--max-job-duration {max_job_duration_s:.0f} s. Raise --max-job-duration, or cap the input "
            "with --max-images, or run in parts with --resume."
        )
