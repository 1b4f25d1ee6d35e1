"""Answers on generated tables with known answers: effort, RAI, detection histories, sun time, activity overlap."""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pytest

from wildlife import deployments
from wildlife.answers import abundance, activity, circular, effort, occupancy, record_key, suntime, tables
from wildlife.deployments import DeploymentError
from wildlife.outputs import DEPLOYMENTS_SCHEMA

UTC0 = timezone(timedelta(0))


def t(day: int, hour: float = 12.0, month: int = 4) -> datetime:
    return datetime(2021, month, day, tzinfo=UTC) + timedelta(hours=hour)


def dep_row(dep_id: str, start: datetime | None, end: datetime | None, photos: list[datetime] = (),
            offset_min: int = 0, lat: float | None = 55.6761, lon: float | None = 12.5683) -> dict:
    """A ``deployments.parquet`` row."""
    return {"deployment_id": dep_id, "deployment_start": start, "deployment_end": end, "utc_offset_min": offset_min,
            "latitude": lat, "longitude": lon, "first_photo_time": min(photos, default=None),
            "last_photo_time": max(photos, default=None)}


def photo(dep_id: str, n: int, when: datetime, flags: tuple[str, ...] = ()) -> dict:
    return {"deployment_id": dep_id, "relpath": f"{dep_id}/IMG_{n:04d}.JPG", "status": "ok", "timestamp": when,
            "clock_flags": list(flags)}


def daily_photos(dep_id: str, days: list[int], start_n: int = 1) -> list[dict]:
    return [photo(dep_id, start_n + i, t(d)) for i, d in enumerate(days)]


def read_csv(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode())))


# --- effort --------------------------------------------------------------------------------------------------


def test_a_silent_gap_is_not_effort_and_setup_at_noon_is_half_a_day():
    # set up 1 April 12:00 UTC, retrieved 30 April 12:00; photos daily 1-5 April, then nothing until 25 April
    photos = daily_photos("A", [1, 2, 3, 4, 5, 25, 26, 27, 28, 29, 30])
    e = effort.deployment_effort(dep_row("A", t(1), t(30)), photos, UTC0)
    assert e.days[date(2021, 4, 1)] == 0.5  # setup at noon: camtrapR 2.1's half day
    assert e.days[date(2021, 4, 5)] == 0.5  # the last photo before the silence, at noon
    assert all(e.days[date(2021, 4, d)] == 0 for d in range(6, 25))  # the silence: set up, not operating
    assert e.days[date(2021, 4, 25)] == 0.5 and e.days[date(2021, 4, 26)] == 1
    assert e.days[date(2021, 4, 30)] == 0.5
    # by hand: 1 Apr 12:00 -> 5 Apr 12:00 is 4 days, 25 Apr 12:00 -> 30 Apr 12:00 is 5 days
    assert e.trap_nights == 9.0
    assert len(e.cuts) == 1 and "silence: no photo for 20.0 days" in e.cuts[0][2]


def test_a_shorter_silence_is_still_effort():
    photos = daily_photos("A", [1, 10, 20, 30])  # gaps of 9 and 10 days: a quiet site
    e = effort.deployment_effort(dep_row("A", t(1), t(30)), photos, UTC0)
    assert e.trap_nights == 29.0 and e.cuts == []


def test_a_camera_reset_ends_effort_at_the_last_trusted_photo_until_the_clock_is_right_again():
    photos = daily_photos("A", [1, 2, 3])
    # files 4-6 have a clock that lost power (year 2000); file 7 was taken after someone set the clock on 20 April
    photos += [photo("A", n, datetime(2000, 1, 1, n, tzinfo=UTC), ("camera_reset",)) for n in (4, 5, 6)]
    photos += [photo("A", 7, t(20)), *daily_photos("A", [21, 22, 23, 24, 25, 26, 27, 28, 29, 30], 8)]
    e = effort.deployment_effort(dep_row("A", t(1), t(30)), photos, UTC0)
    assert [why for _, _, why in e.cuts] == ["camera reset: 3 photo(s) with a lost clock, from A/IMG_0004.JPG"]
    assert e.cuts[0][:2] == (t(3), t(20))
    assert e.days[date(2021, 4, 3)] == 0.5 and e.days[date(2021, 4, 10)] == 0 and e.days[date(2021, 4, 20)] == 0.5
    assert e.trap_nights == 2 + 10  # 1->3 April and 20->30 April


def test_a_window_without_photos_is_set_up_but_not_operating():
    e = effort.deployment_effort(dep_row("A", t(1), t(5)), [], UTC0)
    assert e.trap_nights == 0 and set(e.days.values()) == {0.0}
    assert "no photo with a trusted time" in e.cuts[0][2]


def test_without_a_table_the_first_and_last_photo_are_the_window():
    photos = daily_photos("A", [3, 4, 5])
    e = effort.deployment_effort(dep_row("A", None, None, [p["timestamp"] for p in photos]), photos, UTC0)
    assert e.window == (t(3), t(5)) and e.window_source == "first and last photo" and e.trap_nights == 2.0


def test_days_are_the_deployments_local_days():
    # +02:00: 1 April 12:00 UTC is 14:00 local, so the setup day holds 10 of its 24 hours
    photos = daily_photos("A", [1, 2, 3])
    e = effort.deployment_effort(dep_row("A", t(1), t(3), offset_min=120), photos, timezone(timedelta(hours=2)))
    assert e.days[date(2021, 4, 1)] == round(10 / 24, 4) and e.days[date(2021, 4, 3)] == round(14 / 24, 4)


def test_a_clock_that_follows_daylight_saving_time_has_a_23_hour_day_in_spring():
    brussels = ZoneInfo("Europe/Brussels")  # 28 March 2021: 02:00 -> 03:00, a day of 23 hours
    photos = [photo("A", n, datetime(2021, 3, d, 10, tzinfo=UTC)) for n, d in enumerate(range(26, 29))]
    # set up at 11:00 local (10:00 UTC, +01:00) on the 26th; retrieved at 12:00 local (10:00 UTC, +02:00) on the
    # 28th: 11 of that day's 23 hours had passed
    e = effort.deployment_effort(dep_row("A", datetime(2021, 3, 26, 10, tzinfo=UTC),
                                         datetime(2021, 3, 28, 10, tzinfo=UTC)), photos, brussels)
    assert e.days == {date(2021, 3, 26): round(13 / 24, 4), date(2021, 3, 27): 1.0,
                      date(2021, 3, 28): round(11 / 23, 4)}


def test_problem_periods_from_the_deployments_table(tmp_path: Path):
    table = tmp_path / "deployments.csv"
    table.write_text("deploymentID,deploymentStart,deploymentEnd,Problem1_from,Problem1_to\n"
                     "A,2021-04-01T12:00:00Z,2021-04-30T12:00:00Z,2021-04-10T00:00:00+00:00,"
                     "2021-04-12T00:00:00+00:00\nB,2021-04-01T12:00:00Z,2021-04-30T12:00:00Z,,\n")
    loaded = deployments.load(str(table))
    assert loaded["A"].problems == ((datetime(2021, 4, 10, tzinfo=UTC), datetime(2021, 4, 12, tzinfo=UTC)),)
    assert loaded["B"].problems == ()
    photos = daily_photos("A", list(range(1, 31)))
    e = effort.deployment_effort(dep_row("A", t(1), t(30)), photos, UTC0, loaded["A"].problems)
    assert e.days[date(2021, 4, 10)] == 0 and e.days[date(2021, 4, 11)] == 0 and e.days[date(2021, 4, 12)] == 1
    assert e.trap_nights == 27.0
    # through the run's tables: the same cut, said in effort.csv
    deps = pa.Table.from_pylist([dep_row("A", t(1), t(30), [t(1), t(30)])], schema=DEPLOYMENTS_SCHEMA)
    answers = tables.compute(pa.Table.from_pylist(photos), pa.Table.from_pylist([]), deps, str(table), 7)
    assert answers.efforts[0].trap_nights == 27.0 and "problem period" in answers.efforts[0].cuts[0][2]


def test_a_problem_period_that_cannot_be_read_stops_with_the_line_and_the_fix(tmp_path: Path):
    table = tmp_path / "deployments.csv"
    table.write_text("deploymentID,problem1_from,problem1_to\nA,2021-04-10T00:00:00+00:00,\n")
    with pytest.raises(DeploymentError, match="line 2: problem1_from/problem1_to need both") as err:
        deployments.load(str(table))
    assert "ISO 8601" in err.value.hint


def test_camera_operation_matrix_is_camtrapr_layout_with_na_outside_each_window():
    a = effort.deployment_effort(dep_row("A", t(1), t(4)), daily_photos("A", [1, 2, 3, 4]), UTC0)
    b = effort.deployment_effort(dep_row("B", t(3), t(6)), daily_photos("B", [3, 4, 5, 6]), UTC0)
    answers = tables.Answers([a, b], [], [], occasion_days=2)
    rows = read_csv(tables.files(answers)["camera_operation.csv"])
    assert rows[0] == ["2021-04-01", "2021-04-02", "2021-04-03", "2021-04-04", "2021-04-05", "2021-04-06"]
    assert rows[1] == ["A", "0.5", "1", "1", "0.5", "NA", "NA"]
    assert rows[2] == ["B", "NA", "NA", "0.5", "1", "1", "0.5"]
    eff = {r[0]: r for r in read_csv(tables.files(answers)["effort.csv"])}
    assert eff["A"][eff["deployment_id"].index("trap_nights")] == "3"


# --- relative abundance ---------------------------------------------------------------------------------------


def cluster(dep_id: str, n: int, when: datetime, category: str = "animal", name: str | None = None,
            independent: bool = True) -> dict:
    return {"cluster_id": f"{dep_id}:e{n:06d}", "deployment_id": dep_id, "start_time": when,
            "top_category": category, "scientific_name": name, "independent": independent}


def test_record_key_is_the_scientific_name_else_the_category():
    assert record_key("Vulpes vulpes", "animal") == "Vulpes vulpes"
    assert record_key(None, "animal") == "animal" and record_key("  ", "person") == "person"


def test_rai_is_independent_records_per_100_trap_nights_by_hand():
    a = effort.deployment_effort(dep_row("A", t(1, 0), t(11, 0)), daily_photos("A", range(1, 11)), UTC0,
                                 [(t(8, 0), t(9, 0))])  # 10 days, one of them a problem period: 9 trap-nights
    b = effort.deployment_effort(dep_row("B", t(1, 0), t(5, 0)), daily_photos("B", range(1, 5)), UTC0)
    clusters = [cluster("A", 0, t(2), name="Vulpes vulpes"), cluster("A", 1, t(3), name="Vulpes vulpes"),
                cluster("A", 2, t(3, 12.2), name="Vulpes vulpes", independent=False),  # not a new record
                cluster("A", 3, t(8, 6), name="Vulpes vulpes"),  # in the problem period: counted apart
                cluster("A", 4, t(4)),  # no classifier: its category is the key
                cluster("B", 0, t(2), name="Capreolus capreolus")]
    rows = {(r["deployment_id"], r["taxon"]): r for r in abundance.rai_rows([a, b], abundance.records(clusters))}
    fox = rows[("A", "Vulpes vulpes")]
    assert (fox["records"], fox["records_outside_effort"], fox["trap_nights"]) == (2, 1, 9.0)
    assert fox["rai"] == round(100 * 2 / 9, 4)
    assert rows[("A", "animal")]["rai"] == round(100 / 9, 4)
    assert rows[("B", "Capreolus capreolus")]["rai"] == 25.0
    assert rows[("B", "Vulpes vulpes")]["records"] == 0 and rows[("B", "Vulpes vulpes")]["rai"] == 0


# --- detection histories --------------------------------------------------------------------------------------


def test_detection_history_has_na_where_the_camera_did_not_operate():
    # A: 1-30 April with a silence 6-25 April; occasions of 5 days from 1 April
    a = effort.deployment_effort(dep_row("A", t(1), t(30)), daily_photos("A", [1, 2, 3, 4, 5, 25, 26, 27, 28,
                                                                               29, 30]), UTC0)
    # B: set up 11 April: its own occasions start then (camtrapR's day1 = "station")
    b = effort.deployment_effort(dep_row("B", t(11), t(20)), daily_photos("B", range(11, 21)), UTC0)
    recs = abundance.records([cluster("A", 0, t(3), name="Vulpes vulpes"),
                              cluster("A", 1, t(27), name="Vulpes vulpes"),
                              cluster("B", 0, t(19), name="Vulpes vulpes")])
    ids, hist = occupancy.detection_history([a, b], recs, "Vulpes vulpes", 5)
    assert ids == ["A", "B"]
    # A's occasions: 1-5 (detected), 6-10, 11-15, 16-20 (all 0: NA), 21-25 (only 25th, half a day: NA), 26-30
    assert hist[0] == [1, None, None, None, None, 1]
    assert hist[1] == [0, 1, None, None, None, None]  # 11-15, 16-20; padded to A's width
    assert occupancy.effort_matrix([a, b], 5)[0] == [4.0, None, None, None, None, 4.5]  # half days at the ends

    out = tables.files(tables.Answers([a, b], recs, [], occasion_days=5))
    rows = read_csv(out["detection_histories/Vulpes_vulpes.csv"])
    assert rows == [["o1", "o2", "o3", "o4", "o5", "o6"], ["A", "1", "NA", "NA", "NA", "NA", "1"],
                    ["B", "0", "1", "NA", "NA", "NA", "NA"]]
    index = read_csv(out["detection_histories/index.csv"])
    assert index[1] == ["Vulpes vulpes", "Vulpes_vulpes.csv", "2", "2", "1"]


# --- sun time -------------------------------------------------------------------------------------------------


CPH = (55.6761, 12.5683)
CET = timezone(timedelta(hours=1))


def around_midnight(hour: float) -> bool:
    return min(hour, 24 - hour) < 1e-6


def test_sunrise_and_sunset_in_copenhagen_match_the_published_times():
    # The Local Denmark, 21 December 2016: "In Copenhagen on Wednesday, the sun rose at 8.37am and will set
    # again at 3.38pm" (CET)
    rise, set_ = suntime.sun_events(*CPH, date(2016, 12, 21), CET)
    assert abs((rise - datetime(2016, 12, 21, 8, 37, tzinfo=CET)).total_seconds()) < 60
    assert abs((set_ - datetime(2016, 12, 21, 15, 38, tzinfo=CET)).total_seconds()) < 60


def test_sun_time_puts_sunrise_at_6_and_sunset_at_18():
    rise, set_ = suntime.sun_events(*CPH, date(2021, 6, 21), CET)
    assert suntime.sun_hour(rise, *CPH, CET) == (6.0, None)
    assert suntime.sun_hour(set_, *CPH, CET) == (18.0, None)
    assert suntime.sun_hour(rise + (set_ - rise) / 4, *CPH, CET)[0] == pytest.approx(9.0)
    # midway through the short summer night: midnight in sun time
    next_rise = suntime.sun_events(*CPH, date(2021, 6, 22), CET)[0]
    assert around_midnight(suntime.sun_hour(set_ + (next_rise - set_) / 2, *CPH, CET)[0])
    # clock time is the deployment's clock: 12:00 UTC at +01:00
    assert suntime.clock_hour(datetime(2021, 6, 21, 12, tzinfo=UTC), CET) == 13.0


def test_sun_time_across_the_night_clocks_go_forward():
    brussels, here = ZoneInfo("Europe/Brussels"), (50.85, 4.35)
    set_ = suntime.sun_events(*here, date(2021, 3, 27), brussels)[1].astimezone(UTC)
    rise = suntime.sun_events(*here, date(2021, 3, 28), brussels)[0].astimezone(UTC)
    # midway through the real (elapsed) night is sun midnight, though the clocks skipped an hour in between
    assert around_midnight(suntime.sun_hour(set_ + (rise - set_) / 2, *here, brussels)[0])


def test_polar_day_has_no_sun_time_and_says_why():
    hour, note = suntime.sun_hour(datetime(2021, 6, 21, 12, tzinfo=UTC), 78.22, 15.65, UTC0)
    assert hour is None and "no sunrise or sunset" in note


# --- activity: densities and overlap --------------------------------------------------------------------------


def test_density_is_a_von_mises_kernel_estimate_that_integrates_to_one():
    x = np.array([0.5, 1.0, 4.0])
    grid = np.linspace(0, 2 * math.pi, 2001)
    dens = circular.density(x, grid, 3.0)
    by_hand = np.mean([np.exp(3.0 * np.cos(grid - xi)) for xi in x], axis=0) / (2 * math.pi * np.i0(3.0))
    assert np.allclose(dens, by_hand)
    assert np.trapezoid(dens, grid) == pytest.approx(1.0, abs=1e-9)


def test_bandwidth_matches_an_independent_computation():
    special = pytest.importorskip("scipy.special")
    optimize = pytest.importorskip("scipy.optimize")
    x = np.random.default_rng(7).vonmises(1.0, 1.5, 40) % (2 * math.pi)
    kappas = []
    for k in (1, 2, 3):
        mean = math.atan2(np.sin(x).sum(), np.cos(x).sum())
        rho = abs(np.mean(np.exp(1j * k * (x - mean))))
        f = lambda kap, k=k, rho=rho: special.ive(k, kap) / special.ive(0, kap) - rho  # noqa: E731
        kappas.append(optimize.brentq(f, 1e-4, 500) if f(1e-4) * f(500) <= 0 else 0.0)
    kap = max(kappas)
    expected = (3 * len(x) * kap ** 2 * special.iv(2, 2 * kap) / (4 * math.sqrt(math.pi) * special.iv(0, kap) ** 2)
                ) ** 0.4
    assert circular.bandwidth(x) == pytest.approx(expected, rel=1e-6)


def test_overlap_of_identical_samples_is_one_and_of_disjoint_ones_near_zero():
    rng = np.random.default_rng(3)
    a = rng.vonmises(1.0, 8.0, 60) % (2 * math.pi)
    same = circular.overlap(a, a.copy())
    assert same["dhat1"] == pytest.approx(1.0, abs=1e-3) and same["dhat4"] == 1.0
    b = (a + math.pi) % (2 * math.pi)  # the same shape twelve hours later
    apart = circular.overlap(a, b)
    assert apart["overlap"] < 0.05 and apart["estimator"] == "dhat4"  # 60 records each: Δ̂4


def test_dhat1_of_a_small_case_against_numeric_integration():
    a = np.array([0.3, 0.8, 1.1, 1.9, 2.2, 2.4, 3.0, 5.9])
    b = np.array([1.5, 2.0, 2.6, 3.1, 3.3, 4.0, 4.4, 5.0, 5.5])
    result = circular.overlap(a, b)
    assert result["estimator"] == "dhat1"  # fewer than 50 records
    ca, cb = circular.bandwidth(a) / 0.8, circular.bandwidth(b) / 0.8  # overlap's adjust = 0.8 for Δ̂1

    def vm(sample, c, at):
        return np.mean([np.exp(c * np.cos(at - s)) for s in sample], axis=0) / (2 * math.pi * np.i0(c))

    grid = np.linspace(0, 2 * math.pi, 20001)
    by_hand = np.trapezoid(np.minimum(vm(a, ca, grid), vm(b, cb, grid)), grid)
    assert result["dhat1"] == pytest.approx(by_hand, abs=1e-4)
    # Δ̂4 from its definition: the densities at the records themselves
    fa, fb = vm(a, ca * 0.8, a), vm(b, cb * 0.8, a)
    ga, gb = vm(a, ca * 0.8, b), vm(b, cb * 0.8, b)
    d4 = (np.minimum(1, fb / fa).mean() + np.minimum(1, ga / gb).mean()) / 2
    assert result["dhat4"] == pytest.approx(d4, abs=1e-4)


def _times(taxon: str, hours: list[float]) -> list[dict]:
    return [{"taxon": taxon, "clock_hour": h, "sun_hour": h} for h in hours]


def test_curves_and_overlap_need_enough_records():
    rng = np.random.default_rng(5)
    fox = _times("Vulpes vulpes", list(rng.vonmises(0.0, 2.0, 30) % (2 * math.pi) * 24 / (2 * math.pi)))
    deer = _times("Capreolus capreolus", list(rng.vonmises(2.0, 2.0, 25) % (2 * math.pi) * 24 / (2 * math.pi)))
    rare = _times("Meles meles", [1.0, 2.0, 23.0])
    curves = activity.curves(fox + deer + rare)
    assert {r["taxon"] for r in curves} == {"Vulpes vulpes", "Capreolus capreolus"}  # 3 records: no curve
    one = [r for r in curves if r["taxon"] == "Vulpes vulpes" and r["time_basis"] == "clock"]
    assert one[0]["hour"] == 0 and one[-1]["hour"] == 24 and one[0]["density"] == one[-1]["density"]
    assert np.trapezoid([r["density"] for r in one], [r["hour"] for r in one]) == pytest.approx(1.0, abs=1e-3)
    pairs = {(r["taxon_a"], r["taxon_b"]): r for r in activity.overlaps(fox + deer + rare)
             if r["time_basis"] == "sun"}
    assert pairs[("Capreolus capreolus", "Vulpes vulpes")]["estimator"] == "dhat1"
    assert 0 < pairs[("Capreolus capreolus", "Vulpes vulpes")]["overlap"] < 1
    badger = pairs[("Meles meles", "Vulpes vulpes")]
    assert badger["overlap"] is None and "fewer than 20" in badger["note"]


# --- a run --------------------------------------------------------------------------------------------------


def test_compute_from_run_tables_keeps_records_outside_effort_visible():
    deps = pa.Table.from_pylist([dep_row("A", t(1), t(10), [t(1), t(10)])], schema=DEPLOYMENTS_SCHEMA)
    media = pa.Table.from_pylist(daily_photos("A", range(1, 11)))
    clusters = pa.Table.from_pylist([cluster("A", 0, t(2)), cluster("A", 1, t(20))])  # the second: after retrieval
    answers = tables.compute(media, clusters, deps, None, occasion_days=7)
    assert any("1 independent record(s) fell while the camera was not operating" in w for w in answers.warnings)
    rai = read_csv(tables.files(answers)["rai.csv"])
    assert rai[1] == ["A", "animal", "1", "1", "9", str(round(100 / 9, 4))]


def test_writing_again_leaves_no_history_of_a_taxon_that_is_gone(tmp_path: Path):
    deps = pa.Table.from_pylist([dep_row("A", t(1), t(10), [t(1), t(10)])], schema=DEPLOYMENTS_SCHEMA)
    media = pa.Table.from_pylist(daily_photos("A", range(1, 11)))
    first = tables.write(str(tmp_path), media, pa.Table.from_pylist([cluster("A", 0, t(2))]), deps, {})
    assert (tmp_path / "answers" / "detection_histories" / "animal.csv").is_file()
    # the stage again, after a classifier named the animal: its category's history would mislead
    again = tables.write(str(tmp_path), media, pa.Table.from_pylist([cluster("A", 0, t(2), name="Vulpes vulpes")]),
                         deps, {"occasion_days": 3})
    names = sorted(p.name for p in (tmp_path / "answers" / "detection_histories").iterdir())
    assert names == ["Vulpes_vulpes.csv", "effort.csv", "index.csv"]
    assert first["taxa"] == ["animal"] and again["taxa"] == ["Vulpes vulpes"] and again["occasion_days"] == 3


def test_a_run_writes_the_answers_and_lists_them(sample_run: Path):
    report = json.loads((sample_run / "run_report.json").read_text())
    section = report["final_results"]["answers"]
    assert section["independent_records"] == 1 and section["taxa"] == ["animal"]
    for uri in section["main_files"]:
        assert Path(uri).is_file(), uri
    histories = read_csv((sample_run / "answers" / "detection_histories" / "index.csv").read_bytes())
    assert [r[1] for r in histories[1:]] == ["animal.csv"] and section["detection_histories"] == 1
    assert (sample_run / "answers" / "detection_histories" / "animal.csv").is_file()
    assert set(section["main_files"]) <= set(report["final_results"]["files_created"])
    ops = read_csv((sample_run / "answers" / "camera_operation.csv").read_bytes())
    assert [r[0] for r in ops[1:]] == ["00a2c20d", "29b7d356", "577b543a", "62c200a9"]
    acts = read_csv((sample_run / "answers" / "activity.csv").read_bytes())
    # the heron at 20:43 on the camera's clock (+01:00), after sunset at the deployment: sun time after 18
    row = dict(zip(acts[0], acts[1], strict=True))
    assert row["local_time"] == "2021-04-11T20:43:09" and float(row["clock_hour"]) == pytest.approx(20.7192, 1e-4)
    assert 18 < float(row["sun_hour"]) < 24


def test_the_days_before_the_first_photo_are_effort_however_many():
    """Regression: the silence rule cut set-up -> first photo, 15 of the sample's 22 days, tripling its RAI. The
    issue's rule is the last photo before a long silence; a camera that has not fired yet has not failed."""
    photos = daily_photos("A", [20, 25, 30])  # set up 1 April 12:00, first photo 20 April
    e = effort.deployment_effort(dep_row("A", t(1), t(30)), photos, UTC0)
    assert e.cuts == [] and e.trap_nights == 29.0
    silent = effort.deployment_effort(dep_row("A", t(1), t(30)), daily_photos("A", [2, 3]), UTC0)
    assert silent.trap_nights == 2.0 and "silence" in silent.cuts[0][2]  # after the last photo: cut as before


def test_deployments_with_no_files_in_the_input_are_named_as_such():
    deps = pa.Table.from_pylist([dep_row("A", t(1), t(10), [t(1), t(10)]), dep_row("B", t(1), t(10))],
                                schema=DEPLOYMENTS_SCHEMA)
    answers = tables.compute(pa.Table.from_pylist(daily_photos("A", range(1, 11))), pa.Table.from_pylist([]), deps,
                             None, occasion_days=7)
    assert any(w.startswith("1 deployment(s) count no trap-night (B): the deployments table lists them but this "
                            "input holds none of their files") for w in answers.warnings), answers.warnings
