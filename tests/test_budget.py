from __future__ import annotations

import pytest
import yaml

from wildlife import budget
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
