"""Weather for events through real HTTP (a local server answering with the fixtures), with the real cache."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pyarrow.parquet as pq
import pytest
from conftest import SAMPLE, odin

from wildlife import weather

FIXTURES = Path(__file__).parent / "fixtures" / "weather"


class _Server:
    """Serves the fixtures; records every request that reached it."""

    def __init__(self, fail_first: int = 0):
        self.hits: list[dict] = []
        self.fail_first = fail_first
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                url = urlparse(self.path)
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                outer.hits.append({"path": url.path, "query": q, "headers": dict(self.headers)})
                if outer.fail_first > 0:
                    outer.fail_first -= 1
                    self.send_response(429)
                    self.send_header("Retry-After", "0")
                    self.end_headers()
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
            return "frost-sources-nearest-SN18700.json"
        if path == "/observations/v0.jsonld" and q.get("sources") == "SN18700":
            start, end = q["referencetime"].split("/")
            return f"frost-observations-SN18700-{start}-{end}.json"
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


def test_offline_leaves_columns_empty_and_warns(sample_run):
    report = json.loads((sample_run / "run_report.json").read_text())
    assert any("could not be reached" in w for w in report["warnings"])
    (cluster,) = pq.read_table(sample_run / "clusters.parquet").to_pylist()
    assert "temperature_c" in cluster and cluster["temperature_c"] is None
    assert report["status"] == "succeeded"


def test_retries_on_429(tmp_path):
    s = _Server(fail_first=2)
    try:
        http = weather.session(str(tmp_path / "cache"), backoff=0)
        provider = weather.OpenMeteo(url=f"{s.url}/v1/archive")
        ev = {"cluster_id": "e1", "deployment_id": "d", "start_time": datetime(2021, 4, 11, 18, 43, tzinfo=UTC),
              "end_time": datetime(2021, 4, 11, 18, 44, tzinfo=UTC)}
        rows, summary = weather.enrich([ev], {"d": (50.699, 4.013)}, provider, 1, http)
        assert len(s.hits) == 3 and summary["warnings"] == []
        assert rows[0]["temperature_c"] is not None
    finally:
        s.close()


def test_frost_nearest_station_observations(server, tmp_path):
    http = weather.session(str(tmp_path / "cache"), backoff=0)
    provider = weather.Frost(url=server.url, client_id="test-client")
    ev = {"cluster_id": "e1", "deployment_id": "oslo", "start_time": datetime(2024, 3, 11, 5, 10, tzinfo=UTC),
          "end_time": datetime(2024, 3, 11, 5, 20, tzinfo=UTC)}
    rows, summary = weather.enrich([ev], {"oslo": (59.94, 10.72)}, provider, 1, http)
    assert summary["warnings"] == [] and summary["requests"] == 2
    assert rows[0]["temperature_c"] == pytest.approx(3 + 0.1 * 29)  # hour 29 of the fixture: 11 March 05:00
    assert rows[0]["precipitation_prev_1d_mm"] == pytest.approx(0.4)
    assert server.hits[0]["headers"]["Authorization"].startswith("Basic ")


def test_frost_without_client_id_says_how_to_get_one(server, tmp_path, monkeypatch):
    monkeypatch.delenv("FROST_CLIENT_ID", raising=False)
    provider = weather.Frost(url=server.url)
    ev = {"cluster_id": "e1", "deployment_id": "oslo", "start_time": datetime(2024, 3, 11, 5, tzinfo=UTC),
          "end_time": datetime(2024, 3, 11, 5, tzinfo=UTC)}
    rows, summary = weather.enrich([ev], {"oslo": (59.94, 10.72)}, provider, 0,
                                   weather.session(str(tmp_path / "c")))
    assert "FROST_CLIENT_ID" in summary["warnings"][0] and server.hits == []
    assert rows[0]["temperature_c"] is None


def test_requests_are_grouped_per_grid_cell_and_date_range(server, tmp_path):
    http = weather.session(str(tmp_path / "cache"), backoff=0)
    provider = weather.OpenMeteo(url=f"{server.url}/v1/archive")
    events = [{"cluster_id": f"e{i}", "deployment_id": dep, "start_time": datetime(2021, 4, 11, h, tzinfo=UTC),
               "end_time": datetime(2021, 4, 11, h, 30, tzinfo=UTC)}
              for i, (dep, h) in enumerate([("a", 3), ("a", 18), ("b", 20)])]
    # a and b are 500 m apart: the same 0.1-degree cell, so one request serves all three events
    rows, summary = weather.enrich(events, {"a": (50.699, 4.013), "b": (50.703, 4.009)}, provider, 1, http)
    assert summary["requests"] == 1 and len(server.hits) == 1
    assert all(r["temperature_c"] is not None for r in rows)
