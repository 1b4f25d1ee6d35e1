"""Weather for events through real HTTP (a local server answering with the fixtures), with the real cache."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pyarrow.parquet as pq
import pytest
from conftest import SAMPLE, odin

from wildlife import weather

FIXTURES = Path(__file__).parent / "fixtures" / "weather"


def _status(code: int, headers: dict):
    def answer(handler):
        handler.send_response(code)
        for k, v in headers.items():
            handler.send_header(k, v)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
    return answer


def _body(body: bytes, trickle_s: float = 0.0):
    """A 200 with ``body``; with ``trickle_s``, one byte at a time, that many seconds apart."""
    def answer(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        try:
            if not trickle_s:
                handler.wfile.write(body)
            for i in range(len(body) if trickle_s else 0):
                handler.wfile.write(body[i:i + 1])
                handler.wfile.flush()
                time.sleep(trickle_s)
        except OSError:  # the client hung up, as it should
            pass
    return answer


class _Server:
    """Serves the fixtures; records every request that reached it."""

    def __init__(self, fail_first: int = 0, plan: list | None = None):
        self.hits: list[dict] = []
        # answers for the first requests, in order (then the fixtures): each writes its own answer
        self.plan = [_status(429, {"Retry-After": "0"})] * fail_first + list(plan or [])
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                url = urlparse(self.path)
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                outer.hits.append({"path": url.path, "query": q, "headers": dict(self.headers)})
                if outer.plan:
                    outer.plan.pop(0)(self)
                    return
                name = outer.route(url.path, q)
                if name is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                body = (FIXTURES / name).read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @staticmethod
    def route(path: str, q: dict) -> str | None:
        if path == "/v1/archive":
            lat, lon = float(q["latitude"]), float(q["longitude"])
            name = f"open-meteo-{lat:.1f}-{lon:.1f}-{q['start_date']}-{q['end_date']}"
            return name + ".json" if (FIXTURES / (name + ".json")).exists() else None
        if path == "/sources/v0.jsonld" and q.get("geometry", "").startswith("nearest(POINT("):
            bergen = q["geometry"].startswith("nearest(POINT(5.")
            return f"frost-sources-nearest-{'SN50540' if bergen else 'SN18700'}.json"
        if path == "/observations/v0.jsonld" and q.get("sources") in ("SN18700", "SN50540"):
            start, end = q["referencetime"].split("/")
            name = f"frost-observations-{q['sources']}-{start}-{end}.json"
            return name if (FIXTURES / name).exists() else None
        return None

    def close(self):
        self.httpd.shutdown()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


def _run(out: Path, env: dict) -> dict:
    result = odin("run", "--input", str(SAMPLE / "photos"), "--deployments", str(SAMPLE / "deployments.csv"),
                  "--output", str(out), "--budget", "25", "--weather-days-back", "1", "--detector", "motion",
                  env=env)
    assert result.returncode == 0, result.stderr
    return json.loads((out / "run_report.json").read_text())


def test_pipeline_weather_one_request_then_zero(server, tmp_path):
    env = dict(os.environ, ODIN_OPEN_METEO_URL=f"{server.url}/v1/archive", ODIN_WEATHER_CACHE=str(tmp_path / "c"))
    report = _run(tmp_path / "one", env)
    stage = report["stages"]["WeatherEnrichment"]
    assert (stage["requests"], stage["from_cache"], stage["events_with_weather"]) == (1, 0, 1)
    (hit,) = server.hits
    assert hit["query"]["start_date"] == "2021-04-10" and hit["query"]["end_date"] == "2021-04-11"
    assert hit["headers"]["User-Agent"].startswith("odin-wildlife/")
    (cluster,) = pq.read_table(tmp_path / "one" / "clusters.parquet").to_pylist()
    fixture = json.loads((FIXTURES / "open-meteo-50.7-4.0-2021-04-10-2021-04-11.json").read_text())["hourly"]
    at = fixture["time"].index("2021-04-11T19:00")  # the heron came at 19:43 UTC (a clock set to +01:00)
    assert cluster["weather_time"] == datetime(2021, 4, 11, 19, tzinfo=UTC)
    assert cluster["temperature_c"] == fixture["temperature_2m"][at]
    assert cluster["wind_speed_ms"] == fixture["wind_speed_10m"][at]
    window = range(at - 24, at)
    assert cluster["precipitation_prev_1d_mm"] == pytest.approx(sum(fixture["precipitation"][i] for i in window))
    assert (tmp_path / "one" / "weather" / "weather.parquet").is_file()

    report = _run(tmp_path / "two", env)  # a second run asks the cache, not the network
    stage = report["stages"]["WeatherEnrichment"]
    assert (stage["requests"], stage["from_cache"]) == (0, 1)
    assert len(server.hits) == 1


def test_weather_again_after_the_network_came_back(server, tmp_path):
    """`stage WeatherEnrichment`: a run made offline gets its weather later, without detecting again."""
    cache = str(tmp_path / "c")
    offline = _run(tmp_path / "run", dict(os.environ, ODIN_WEATHER_CACHE=cache))  # conftest: a closed port
    assert offline["stages"]["WeatherEnrichment"]["events_with_weather"] == 0
    env = dict(os.environ, ODIN_OPEN_METEO_URL=f"{server.url}/v1/archive", ODIN_WEATHER_CACHE=cache)
    result = odin("stage", "WeatherEnrichment", "--output", str(tmp_path / "run"), env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "run" / "run_report.json").read_text())
    assert report["stages"]["WeatherEnrichment"]["events_with_weather"] == 1 and len(server.hits) == 1
    assert not any("could not be reached" in w for w in report["warnings"])
    (cluster,) = pq.read_table(tmp_path / "run" / "clusters.parquet").to_pylist()
    assert cluster["temperature_c"] is not None
    assert report["stages"]["Stage1Detect"] == offline["stages"]["Stage1Detect"]  # not run again


def test_offline_leaves_columns_empty_and_warns(sample_run):
    report = json.loads((sample_run / "run_report.json").read_text())
    assert any("could not be reached" in w for w in report["warnings"])
    (cluster,) = pq.read_table(sample_run / "clusters.parquet").to_pylist()
    assert "temperature_c" in cluster and cluster["temperature_c"] is None
    assert report["status"] == "succeeded"


def test_retries_on_429(tmp_path):
    s = _Server(fail_first=2)
    try:
        provider = weather.OpenMeteo(url=f"{s.url}/v1/archive")
        http = weather.session(provider, str(tmp_path / "cache"), backoff=0)
        ev = {"cluster_id": "e1", "deployment_id": "d", "start_time": datetime(2021, 4, 11, 18, 43, tzinfo=UTC),
              "end_time": datetime(2021, 4, 11, 18, 44, tzinfo=UTC)}
        rows, summary = weather.enrich([ev], {"d": (50.699, 4.013)}, provider, 1, http)
        assert len(s.hits) == 3 and summary["warnings"] == []
        assert rows[0]["temperature_c"] is not None
    finally:
        s.close()


def test_frost_nearest_station_observations(server, tmp_path):
    provider = weather.Frost(url=server.url, client_id="test-client")
    http = weather.session(provider, str(tmp_path / "cache"), backoff=0)
    ev = {"cluster_id": "e1", "deployment_id": "oslo", "start_time": datetime(2024, 3, 11, 5, 10, tzinfo=UTC),
          "end_time": datetime(2024, 3, 11, 5, 20, tzinfo=UTC)}
    rows, summary = weather.enrich([ev], {"oslo": (59.94, 10.72)}, provider, 1, http)
    assert not [w for w in summary["warnings"] if "without weather" in w] and summary["requests"] == 2
    assert rows[0]["temperature_c"] == pytest.approx(3 + 0.1 * 29)  # hour 29 of the fixture: 11 March 05:00
    assert rows[0]["precipitation_prev_1d_mm"] == pytest.approx(0.4)
    assert server.hits[0]["headers"]["Authorization"].startswith("Basic ")
    asked = server.hits[1]["query"]["elements"].split(",")
    assert asked == [v.frost for v in weather.VARIABLES if v.frost]  # every variable, by Frost's element ids
    assert {"relative_humidity", "dew_point_temperature", "wind_from_direction", "max(wind_speed_of_gust PT1H)",
            "air_pressure_at_sea_level"} <= set(asked)


def test_frost_station_without_some_elements_leaves_those_columns_empty(server, tmp_path):
    # a real Frost answer (Bergen - Florida, 1 April 2022): temperature, humidity and wind speed, nothing else
    provider = weather.Frost(url=server.url, client_id="test-client")
    ev = {"cluster_id": "e1", "deployment_id": "bergen", "start_time": datetime(2022, 4, 1, 10, 40, tzinfo=UTC),
          "end_time": datetime(2022, 4, 1, 10, 50, tzinfo=UTC)}
    rows, summary = weather.enrich([ev], {"bergen": (60.383, 5.3327)}, provider, 0,
                                   weather.session(provider, str(tmp_path / "cache"), backoff=0))
    (row,) = rows
    assert (row["temperature_c"], row["relative_humidity_pct"], row["wind_speed_ms"]) == (5.6, 35, 2.6)
    absent = [c for c in weather.COLUMNS if c not in ("temperature_c", "relative_humidity_pct", "wind_speed_ms")]
    assert all(row[c] is None for c in absent) and row["weather_missing"] == ", ".join(absent)
    assert row["weather_note"] is None and row["weather_time"] == datetime(2022, 4, 1, 10, tzinfo=UTC)
    (warning,) = summary["warnings"]
    assert warning.startswith("weather: 1 of 1 event(s) without dew_point_c") and "not filled" in warning


def test_open_meteo_asks_for_every_archive_variable_and_fills_each_column(server, tmp_path):
    provider, http = _open_meteo(server, tmp_path)
    (row,), summary = weather.enrich([HERON], AT_HERON, provider, 1, http)
    (hit,) = server.hits
    asked = hit["query"]["hourly"].split(",")
    assert {"relative_humidity_2m", "dew_point_2m", "pressure_msl", "surface_pressure", "wind_direction_10m",
            "wind_gusts_10m", "cloud_cover"} <= set(asked)
    assert not {"visibility", "uv_index"} & set(asked)  # forecast-only at Open-Meteo: left out, not filled
    fixture = json.loads(GOOD)["hourly"]
    at = fixture["time"].index("2021-04-11T18:00")
    assert {c: row[c] for c in weather.COLUMNS} == {c: fixture[src][at] for src, c in provider.variables}
    assert row["weather_missing"] is None and summary["warnings"] == []


def test_open_meteo_answer_without_a_variable_is_kept_and_that_column_says_so(tmp_path):
    body = json.loads(GOOD)
    del body["hourly"]["dew_point_2m"], body["hourly"]["wind_gusts_10m"]
    s = _Server(plan=[_body(json.dumps(body).encode())])
    try:
        provider, http = _open_meteo(s, tmp_path)
        (row,), summary = weather.enrich([HERON], AT_HERON, provider, 1, http)
        assert row["temperature_c"] is not None and row["dew_point_c"] is None and row["wind_gusts_ms"] is None
        assert row["weather_missing"] == "dew_point_c, wind_gusts_ms" and row["weather_note"] is None
        assert summary["failed"] == 0 and "without dew_point_c, wind_gusts_ms" in summary["warnings"][0]
    finally:
        s.close()


def test_open_meteo_answer_with_none_of_the_variables_is_a_bad_answer(tmp_path):
    body = {"hourly": {k: v for k, v in json.loads(GOOD)["hourly"].items() if k == "time"}}
    s = _Server(plan=[_body(json.dumps(body).encode())])
    try:
        provider, http = _open_meteo(s, tmp_path)
        (row,), summary = weather.enrich([HERON], AT_HERON, provider, 1, http)
        assert summary["failed"] == 1 and "holds none of the variables asked for" in row["weather_note"]
    finally:
        s.close()


def test_frost_without_client_id_says_how_to_get_one(server, tmp_path, monkeypatch):
    monkeypatch.delenv("FROST_CLIENT_ID", raising=False)
    provider = weather.Frost(url=server.url)
    ev = {"cluster_id": "e1", "deployment_id": "oslo", "start_time": datetime(2024, 3, 11, 5, tzinfo=UTC),
          "end_time": datetime(2024, 3, 11, 5, tzinfo=UTC)}
    rows, summary = weather.enrich([ev], {"oslo": (59.94, 10.72)}, provider, 0,
                                   weather.session(provider, str(tmp_path / "c")))
    assert "FROST_CLIENT_ID" in summary["warnings"][0] and server.hits == []
    assert rows[0]["temperature_c"] is None


def test_requests_are_grouped_per_grid_cell_and_date_range(server, tmp_path):
    provider = weather.OpenMeteo(url=f"{server.url}/v1/archive")
    http = weather.session(provider, str(tmp_path / "cache"), backoff=0)
    events = [{"cluster_id": f"e{i}", "deployment_id": dep, "start_time": datetime(2021, 4, 11, h, tzinfo=UTC),
               "end_time": datetime(2021, 4, 11, h, 30, tzinfo=UTC)}
              for i, (dep, h) in enumerate([("a", 3), ("a", 18), ("b", 20)])]
    # a and b are 500 m apart: the same 0.1-degree cell, so one request serves all three events
    rows, summary = weather.enrich(events, {"a": (50.699, 4.013), "b": (50.703, 4.009)}, provider, 1, http)
    assert summary["requests"] == 1 and len(server.hits) == 1
    assert all(r["temperature_c"] is not None for r in rows)


HERON = {"cluster_id": "e1", "deployment_id": "d", "start_time": datetime(2021, 4, 11, 18, 43, tzinfo=UTC),
         "end_time": datetime(2021, 4, 11, 18, 44, tzinfo=UTC)}
AT_HERON = {"d": (50.699, 4.013)}
GOOD = (FIXTURES / "open-meteo-50.7-4.0-2021-04-10-2021-04-11.json").read_bytes()


def _returns(call, limit: float = 120):
    """``call()`` in a thread: a safety net that fails the test instead of hanging it (not a timing)."""
    out: dict = {}

    def target():
        try:
            out["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test below
            out["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), "the weather call did not return"
    if "error" in out:
        raise out["error"]
    return out["value"]


def _open_meteo(server, tmp_path, **session_kwargs):
    provider = weather.OpenMeteo(url=f"{server.url}/v1/archive")
    return provider, weather.session(provider, str(tmp_path / "cache"), backoff=0, **session_kwargs)


def test_retry_after_of_six_hours_is_capped(tmp_path):
    s = _Server(plan=[_status(429, {"Retry-After": "21600"})] * 4)
    try:
        provider, http = _open_meteo(s, tmp_path, max_wait_s=0.01)
        rows, summary = _returns(lambda: weather.enrich([HERON], AT_HERON, provider, 1, http))
        assert len(s.hits) == 4  # the first try and 3 retries, each after the capped wait, then it gives up
        assert summary["failed"] == 1 and "429" in summary["warnings"][0]
        assert rows[0]["temperature_c"] is None and "could not be reached" in rows[0]["weather_note"]
    finally:
        s.close()


def test_retry_after_past_the_stage_deadline_stops_asking(tmp_path):
    s = _Server(plan=[_status(429, {"Retry-After": "21600"})])
    try:
        provider, http = _open_meteo(s, tmp_path, deadline=time.monotonic() + 5, limit="the test's limit")
        events = [HERON, dict(HERON, cluster_id="e2", deployment_id="far")]
        rows, summary = _returns(lambda: weather.enrich(events, {**AT_HERON, "far": (10.0, 10.0)}, provider, 0, http))
        assert len(s.hits) == 1  # no wait at all: 21600 s, or even the 30 s cap, ends after the deadline
        (warning,) = summary["warnings"]
        assert warning.startswith("weather: 2 of 2 event(s) without weather: stopped asking open-meteo")
        assert "asked to wait 21600 s (Retry-After), past the test's limit" in warning
        assert all(r["weather_note"] and r["temperature_c"] is None for r in rows)
    finally:
        s.close()


def test_trickling_answer_stops_at_the_whole_request_deadline(tmp_path):
    s = _Server(plan=[_body(GOOD, trickle_s=0.05)])  # ~17 min for the whole answer
    try:
        provider, http = _open_meteo(s, tmp_path, request_s=0.5)
        rows, summary = _returns(lambda: weather.enrich([HERON], AT_HERON, provider, 1, http))
        assert len(s.hits) == 1 and summary["failed"] == 1
        assert "the whole answer took longer than 0.5 s" in summary["warnings"][0]
        assert rows[0]["temperature_c"] is None
    finally:
        s.close()


def test_wrong_answer_is_not_cached_and_the_next_run_asks_again(tmp_path):
    wrong = json.dumps({"hourly": {"time": ["2021-04-10T00:00", "2021-04-10T01:00"], "temperature_2m": [1.0]}})
    s = _Server(plan=[_body(wrong.encode())])
    try:
        provider, http = _open_meteo(s, tmp_path)
        rows, summary = weather.enrich([HERON], AT_HERON, provider, 1, http)
        assert (summary["requests"], summary["failed"]) == (1, 1)
        assert "not the weather asked for" in rows[0]["weather_note"] and rows[0]["temperature_c"] is None
        assert "not as long as 'hourly.time'" in summary["warnings"][0]

        provider, http = _open_meteo(s, tmp_path)  # the next run, same cache
        rows, summary = weather.enrich([HERON], AT_HERON, provider, 1, http)
        assert (summary["requests"], summary["from_cache"], summary["failed"]) == (1, 0, 0)
        assert rows[0]["temperature_c"] is not None and rows[0]["weather_note"] is None

        rows, summary = weather.enrich([HERON], AT_HERON, provider, 1, http)  # the right answer was cached
        assert (summary["requests"], summary["from_cache"]) == (0, 1) and len(s.hits) == 2
    finally:
        s.close()


def test_dates_out_of_range_ask_nothing_and_say_why(server, tmp_path):
    provider, http = _open_meteo(server, tmp_path)
    far = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
    old = datetime(1931, 6, 1, 12, tzinfo=UTC)
    events = [dict(HERON, cluster_id="future", start_time=far, end_time=far),
              dict(HERON, cluster_id="old", start_time=old, end_time=old),
              dict(HERON, cluster_id="tomorrow", start_time=datetime(2026, 11, 25, tzinfo=UTC),
                   end_time=datetime(2026, 11, 25, 1, tzinfo=UTC))]
    rows, summary = _returns(lambda: weather.enrich(events, AT_HERON, provider, 7, http, today=date(2026, 11, 24)))
    assert server.hits == [] and summary["requests"] == 0
    notes = {r["cluster_id"]: r["weather_note"] for r in rows}
    assert "9999-12-31 is in the future" in notes["future"] and "in the future" in notes["tomorrow"]
    assert "before 1940" in notes["old"]
    assert len(summary["warnings"]) == 3


def test_weather_stage_stops_at_max_job_duration(sample_run, server, tmp_path, monkeypatch):
    from wildlife import stages  # noqa: PLC0415

    monkeypatch.setenv("ODIN_OPEN_METEO_URL", f"{server.url}/v1/archive")
    monkeypatch.setenv("ODIN_WEATHER_CACHE", str(tmp_path / "cache"))
    state = json.loads((sample_run / "_run" / "state.json").read_text())
    state["params"].update(output_uri=str(tmp_path / "out"), max_job_duration=20)
    ctx = stages.Context(deadline=time.monotonic() - 1)  # the run's time is already spent
    payload = _returns(lambda: stages.weather_enrichment(state, ctx))
    assert server.hits == [] and payload["requests"] == 0 and payload["events_with_weather"] == 0
    (warning,) = payload["warnings"]
    assert "1 of 1 event(s) without weather" in warning and "--max-job-duration" in warning
    note = pq.read_table(payload["weather_uri"]).column("weather_note").to_pylist()
    assert "--max-job-duration" in note[0]
