"""Classification in the price: the estimate grows by the crops a classifier will see, only when one will run,
and the guard refuses a run that classification tips over its budget."""

from __future__ import annotations

import pytest

from wildlife import budget
from wildlife.budget import BudgetExceeded
from wildlife.errors import InputError


def test_classification_adds_to_the_estimate_only_when_a_classifier_will_run():
    prices = budget.load_prices()
    kw = {"target": "aws", "detector": "megadetector", "prices": prices}
    plain = budget.estimate(100_000, 10**11, classifier="none", **kw)
    species_run = budget.estimate(100_000, 10**11, classifier="speciesnet", expected_empty_share=0.7, **kw)
    crops = 100_000 * 0.3 * prices["classification"]["detections_per_positive_photo"]
    inst = prices["instances"]["g4dn.xlarge"]
    ms = inst["ms_per_photo"]["megadetector"] / prices["classification"]["model_speed"]["speciesnet"]
    assert species_run.lines[:len(plain.lines)] == plain.lines
    (item, basis, dkk), = species_run.lines[len(plain.lines):]
    assert item.startswith("classification (speciesnet") and f"{round(crops)} expected animal boxes" in basis
    assert dkk == pytest.approx(crops * ms / 1000 / 3600 * inst["spot"] * prices["usd_to_dkk"])
    # Stage 1's array children classify side by side, as they detect
    parallel = species_run.rates["parallel_jobs"]
    assert species_run.wall_time_s == pytest.approx(plain.wall_time_s + crops * ms / 1000 / parallel)
    # fewer empty photos, more animals to classify
    busier = budget.estimate(100_000, 10**11, classifier="speciesnet", expected_empty_share=0.2, **kw)
    assert busier.total_dkk > species_run.total_dkk > plain.total_dkk
    # the motion baseline's boxes are not classified; neither does a local auto without SpeciesNet cached
    motion = budget.estimate(1000, 10**9, target="local", detector="motion", classifier="speciesnet")
    assert "classifier" not in motion.rates


def test_local_auto_prices_speciesnet_only_when_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("ODIN_MODELS", str(tmp_path))  # the model cache (wildlife.detect.catalog.cache_dir)
    est = budget.estimate(1000, 10**9, target="local", detector="megadetector", classifier="auto")
    assert "classifier" not in est.rates
    (tmp_path / "speciesnet.onnx").write_bytes(b"model")
    est = budget.estimate(1000, 10**9, target="local", detector="megadetector", classifier="auto")
    assert est.rates["classifier"]["crops"] == 450 and est.total_dkk == 0


def test_the_guard_refuses_when_classification_tips_the_estimate_over_budget():
    kw = {"target": "aws", "detector": "megadetector", "use_spot": False}
    plain = budget.estimate(200_000, 10**11, classifier="none", **kw)
    with_species = budget.estimate(200_000, 10**11, classifier="speciesnet", expected_empty_share=0.0, **kw)
    between = (plain.total_dkk + with_species.total_dkk) / 2
    budget.guard(plain, between, None)
    with pytest.raises(BudgetExceeded, match="exceeds the budget"):
        budget.guard(with_species, between, None)
    with pytest.raises(InputError, match="expected-empty-share"):
        budget.estimate(10, 10, classifier="speciesnet", expected_empty_share=1.5, **kw)
