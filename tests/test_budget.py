from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import photofactory as pf
import pytest
import yaml
from conftest import odin

from wildlife import budget, calibration, stage0
from wildlife.budget import BudgetExceeded


def test_estimate_adds_up_the_services_in_dkk():
    prices = budget.load_prices()
    est = budget.estimate(100_000, 100_000 * 2_000_000, target="aws", detector="megadetector", prices=prices)
    items = [line[0] for line in est.lines]
    assert items == ["compute (g4dn.xlarge, spot)", "Lambda", "Step Functions", "S3"]
    inst = prices["instances"]["g4dn.xlarge"]
    gpu_hours = (100_000 * inst["ms_per_photo"]["megadetector"] / 1000 + prices["batch_job_overhead_s"]) / 3600
    assert est.lines[0][2] == pytest.approx(gpu_hours * inst["spot"] * prices["usd_to_dkk"])
    assert est.total_dkk == pytest.approx(sum(line[2] for line in est.lines), abs=0.01)


def test_spot_is_cheaper_and_cost_grows_with_photos():
    a = budget.estimate(10_000, 10**10, target="aws", detector="megadetector", use_spot=True)
    b = budget.estimate(10_000, 10**10, target="aws", detector="megadetector", use_spot=False)
    c = budget.estimate(20_000, 2 * 10**10, target="aws", detector="megadetector", use_spot=True)
    assert a.total_dkk < b.total_dkk and a.total_dkk < c.total_dkk


def test_local_costs_nothing_but_takes_time():
    est = budget.estimate(1000, 10**9, target="local", detector="motion")
    assert est.total_dkk == 0 and est.wall_time_s > 0


def test_price_table_override(tmp_path):
    prices = budget.load_prices()
    prices["usd_to_dkk"] = prices["usd_to_dkk"] * 2
    path = tmp_path / "prices.yaml"
    path.write_text(yaml.safe_dump(prices))
    base = budget.estimate(5000, 10**9, target="aws", detector="megadetector")
    doubled = budget.estimate(5000, 10**9, target="aws", detector="megadetector", prices=budget.load_prices(str(path)))
    assert doubled.total_dkk == pytest.approx(2 * base.total_dkk, rel=0.01)


def test_guard_refuses_with_what_to_change():
    est = budget.estimate(100_000, 10**11, target="aws", detector="megadetector", use_spot=False)
    with pytest.raises(BudgetExceeded) as err:
        budget.guard(est, 5.0, None)
    text = str(err.value)
    assert f"{est.total_dkk:.2f} DKK" in text and "budget of 5 DKK" in text
    assert "--max-images" in text and "--use-spot" in text
    budget.guard(est, est.total_dkk + 1, None)  # within budget: no error


def test_unknown_instance_type_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown instance type 'p9\.huge'"):
        budget.estimate(10, 10, target="aws", detector="megadetector", instance_type="p9.huge")


def test_auto_without_weights_is_priced_as_the_motion_baseline_that_runs():
    prices = budget.load_prices()  # conftest points ODIN_MODELS at an empty folder: no MegaDetector here
    est = budget.estimate(3000, 3000 * 2_000_000, target="local", detector="auto", prices=prices)
    assert est.detector == "motion"
    assert est.rates["detector"]["ms_per_photo"] == prices["local"]["ms_per_photo"]["motion"]
    budget.guard(est, 25, 600)  # 3,000 photos of motion fit in 10 minutes; as MegaDetector they did not
    md = budget.estimate(3000, 3000 * 2_000_000, target="local", detector="megadetector", prices=prices)
    assert md.detector == "megadetector" and md.wall_time_s > est.wall_time_s


def test_auto_with_cached_weights_is_priced_as_megadetector(tmp_path, monkeypatch):
    from wildlife.detect import weights  # noqa: PLC0415

    monkeypatch.setenv("ODIN_MODELS", str(tmp_path))
    (tmp_path / weights.KNOWN["md-v5a"]["file"]).write_bytes(b"")  # only its presence decides
    assert budget.estimate(10, 10, target="local", detector="auto").detector == "megadetector"


def _photos(folder, n: int, size=(96, 64)) -> str:
    background = pf.scene(*size, seed=1)
    t0 = datetime(2024, 5, 1, 6)
    for i in range(n):
        pf.write_photo(folder / f"IMG{i:04d}.JPG", pf.with_animal(background, (0.1 * (i % 8), 0.3, 0.2, 0.3)),
                       when=t0 + timedelta(seconds=i))
    return str(folder)


def test_local_estimate_records_where_its_rates_come_from(tmp_path):
    folder = _photos(tmp_path / "in", calibration.MIN_INPUT)
    pending = [r for r in stage0.scan(folder, None).to_pylist() if r["status"] == "pending"]
    measured = calibration.calibrate(pending, "auto", 60.0)
    est = budget.estimate(len(pending), 10**6, target="local", detector="auto", measured=measured)
    for stage in ("stage0", "detector"):
        assert est.rates[stage]["source"] == calibration.SOURCE
        assert est.rates[stage]["photos_timed"] == calibration.PHOTOS
    few = calibration.calibrate(pending[:10], "auto", 60.0)
    est = budget.estimate(10, 10**5, target="local", detector="auto", measured=few)
    assert est.rates["detector"]["source"].startswith("price table")
    assert "10 photos are too few" in est.rates["detector"]["source"] and est.rates["detector"]["photos_timed"] == 0
    aws = budget.estimate(10, 10**5, target="aws", detector="auto")
    assert aws.detector == "megadetector" and "g4dn.xlarge" in aws.rates["detector"]["source"]


def test_max_job_duration_does_not_refuse_auto_without_weights(tmp_path):
    folder = _photos(tmp_path / "in", 250)  # priced as MegaDetector on CPU this was 625 s: refused
    est = odin("estimate", "--input", folder, "--budget", "1", "--max-job-duration", "600")
    assert est.returncode == 0, est.stdout + est.stderr
    printed = est.stdout + est.stderr
    assert "rate detector motion" in printed and "calibrated on this machine, 12 photos timed" in printed
    out = tmp_path / "out"
    run = odin("run", "--input", folder, "--output", str(out), "--budget", "1", "--max-job-duration", "600",
               "--weather-provider", "none")
    assert run.returncode == 0, run.stdout + run.stderr
    state = json.loads((out / "_run" / "state.json").read_text())
    rates = state["GuardBudget"]["estimate"]["rates"]
    assert rates["detector"]["name"] == "motion" and rates["detector"]["source"] == calibration.SOURCE
    assert state["Stage1Detect"]["detector"]["name"] == "odin-motion-baseline"


def test_the_estimates_parallel_ceiling_is_the_aws_profiles():
    """The price table's ``batch_max_vcpus`` prices Stage 1's children side by side up to the ceiling the AWS
    profile deploys; a profile raised or lowered without it would make every AWS wall-time estimate wrong."""
    from conftest import ROOT  # noqa: PLC0415

    profile = yaml.safe_load((ROOT / "conf" / "profiles" / "aws.yaml").read_text())
    prices = yaml.safe_load(Path(budget.DEFAULT_PRICES).read_text())
    assert prices["batch_max_vcpus"] == profile["compute"]["max_vcpus"]
