"""Weather at positive events, from Open-Meteo's historical archive (default, no key) or MET Norway's Frost.

MET Norway's Locationforecast (api.met.no, yr.no) serves forecasts only, so it cannot answer for past
events; Frost serves observations from stations and needs a client id (``FROST_CLIENT_ID``).

Requests are grouped: one HTTP request per location (rounded to the provider's grid) and date range, cached
on disk with requests-cache (SQLite in the user's cache folder by default; ``ODIN_WEATHER_CACHE`` names
another file, ``ODIN_WEATHER_CACHE_BACKEND`` another backend such as ``dynamodb`` or ``filesystem``), retried
with capped waits on 429 and 5xx. Every remote call has bounded time (``weather_http``): a whole-answer
deadline per request and one for the stage; only answers that pass the provider's ``check`` are cached.
Without network, or out of time, the columns stay empty, each event says why in ``weather_note``, and the
run goes on with a warning that counts the events left without weather.
"""

from __future__ import annotations

import math
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import requests

import wildlife
from wildlife.errors import OdinError

USER_AGENT = os.environ.get(
    "ODIN_USER_AGENT", f"odin-wildlife/{wildlife.__version__} camera-trap pipeline (set ODIN_USER_AGENT to add contact)"
)


@dataclass(frozen=True)
class Variable:
    """One weather value per event: its column (unit in the name), a readable label, and each provider's name."""

    column: str
    label: str
    open_meteo: str  # the archive API's hourly variable
    frost: str | None  # MET Frost's element id (None: Frost has no hourly element for it)


# Every variable of the design that a historical archive serves. Visibility and UV index are left out: Open-Meteo
# serves them from forecast models only (ERA5 has no visibility; UV cannot be derived from reanalysis radiation).
VARIABLES = (
    Variable("temperature_c", "Temperature (°C)", "temperature_2m", "air_temperature"),
    Variable("relative_humidity_pct", "Humidity (%)", "relative_humidity_2m", "relative_humidity"),
    Variable("dew_point_c", "Dew point (°C)", "dew_point_2m", "dew_point_temperature"),
    Variable("precipitation_mm", "Precipitation (mm/h)", "precipitation", "sum(precipitation_amount PT1H)"),
    Variable("wind_speed_ms", "Wind (m/s)", "wind_speed_10m", "wind_speed"),
    Variable("wind_gusts_ms", "Gusts (m/s)", "wind_gusts_10m", "max(wind_speed_of_gust PT1H)"),
    Variable("wind_direction_deg", "Wind from (°)", "wind_direction_10m", "wind_from_direction"),
    Variable("pressure_msl_hpa", "Pressure, sea level (hPa)", "pressure_msl", "air_pressure_at_sea_level"),
    Variable("surface_pressure_hpa", "Pressure, surface (hPa)", "surface_pressure", "surface_air_pressure"),
    Variable("cloud_cover_pct", "Cloud cover (%)", "cloud_cover", "cloud_area_fraction"),
    Variable("shortwave_radiation_wm2", "Sunlight (W/m²)", "shortwave_radiation",
             "mean(surface_downwelling_shortwave_flux_in_air PT1H)"),
)
COLUMNS = tuple(v.column for v in VARIABLES)
LABELS = {v.column: v.label for v in VARIABLES}
MAX_RANGE_GAP_DAYS = 31  # dates of one location closer than this share one request


REQUEST_S = 60.0  # one request, connect to last byte
STAGE_S = 300.0  # the weather stage asks nothing more after this; the events left get a reason
MAX_WAIT_S = 30.0  # the longest Retry-After honoured (never past the stage's time limit)


class WeatherUnavailable(OdinError):
    """The provider cannot be asked (no key, no network); the run goes on without weather."""


class OutOfTime(Exception):
    """The weather stage's time is up (its own limit or ``--max-job-duration``): it asks nothing more."""


class BadAnswer(Exception):
    """An HTTP 200 answer that is not the weather asked for: a failed request, never cached."""


def cache_path() -> str:
    if os.environ.get("ODIN_WEATHER_CACHE"):
        return os.environ["ODIN_WEATHER_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "odin", "weather")


def session(provider, cache: str | None = None, backend: str | None = None, *, deadline: float | None = None,
            limit: str = "the weather stage's time limit", request_s: float = REQUEST_S,
            max_wait_s: float = MAX_WAIT_S, retries: int = 3, backoff: float = 0.5):
    """A cached HTTP session with Odin's User-Agent and bounded time (``weather_http.BoundedAdapter``).

    Only answers that ``provider.check`` accepts are cached. ``deadline`` (a ``time.monotonic()`` value,
    described by ``limit`` in messages) ends the asking; the cache still answers after it.
    """
    import requests_cache  # noqa: PLC0415 - only runs that ask for weather pay for the import

    from wildlife.weather_http import BoundedAdapter  # noqa: PLC0415

    s = requests_cache.CachedSession(
        cache or cache_path(), backend=backend or os.environ.get("ODIN_WEATHER_CACHE_BACKEND", "sqlite"),
        expire_after=timedelta(days=30), allowable_codes=(200,),
        filter_fn=lambda resp: resp.status_code != 200 or provider.check(resp) is None,
    )
    adapter = BoundedAdapter(deadline=deadline, limit=limit, request_s=request_s, max_wait_s=max_wait_s,
                             retries=retries, backoff=backoff)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    s.headers["User-Agent"] = USER_AGENT
    return s


def _json(resp) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def _checked(provider, resp):
    resp.raise_for_status()
    if problem := provider.check(resp):
        raise BadAnswer(problem)
    return resp.json()


@dataclass
class OpenMeteo:
    name: str = "open-meteo"
    grid: float = 0.1  # ERA5-Land's resolution; finer coordinates ask for the same cell
    earliest: date = date(1940, 1, 1)  # ERA5 starts in 1940
    url: str = field(default_factory=lambda: os.environ.get(
        "ODIN_OPEN_METEO_URL", "https://archive-api.open-meteo.com/v1/archive"))
    variables: tuple[tuple[str, str], ...] = tuple((v.open_meteo, v.column) for v in VARIABLES)

    def check(self, resp) -> str | None:
        """What is wrong with a 200 answer (None: an hourly series of the variables asked for; one the answer
        lacks stays empty in every row and ``weather_missing`` names it)."""
        body = _json(resp)
        hourly = body.get("hourly") if isinstance(body, dict) else None
        if not isinstance(hourly, dict):
            return "no 'hourly' object"
        times = hourly.get("time")
        if not isinstance(times, list) or not times:
            return "'hourly.time' is not a list of hours"
        try:
            [datetime.fromisoformat(t) for t in times]
        except (TypeError, ValueError):
            return "'hourly.time' holds something that is not a time"
        present = [src for src, _ in self.variables if src in hourly]
        if not present:
            return "'hourly' holds none of the variables asked for"
        for src in present:
            values = hourly[src]
            if not isinstance(values, list) or len(values) != len(times):
                return f"'hourly.{src}' is not a list, or not as long as 'hourly.time'"
        return None

    def fetch(self, http, lat: float, lon: float, start: date, end: date) -> dict[datetime, dict[str, float]]:
        resp = http.get(self.url, params={
            "latitude": f"{lat:.4f}", "longitude": f"{lon:.4f}", "start_date": start.isoformat(),
            "end_date": end.isoformat(), "hourly": ",".join(src for src, _ in self.variables),
            "wind_speed_unit": "ms", "timezone": "GMT",
        })
        hourly = _checked(self, resp)["hourly"]
        empty = [None] * len(hourly["time"])
        return {datetime.fromisoformat(stamp).replace(tzinfo=UTC):
                {col: hourly.get(src, empty)[i] for src, col in self.variables}
                for i, stamp in enumerate(hourly["time"])}


@dataclass
class Frost:
    name: str = "met-frost"
    grid: float = 0.01
    earliest: date = date(1900, 1, 1)
    url: str = field(default_factory=lambda: os.environ.get("ODIN_FROST_URL", "https://frost.met.no"))
    client_id: str | None = field(default_factory=lambda: os.environ.get("FROST_CLIENT_ID"))

    def check(self, resp) -> str | None:
        """What is wrong with a 200 answer (None: a ``data`` list of stations or of observations)."""
        body = _json(resp)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            return "no 'data' list"
        if urlparse(resp.url).path.endswith("/sources/v0.jsonld"):
            return None if data and isinstance(data[0], dict) and "id" in data[0] else "no station in 'data'"
        for item in data:
            if not (isinstance(item, dict) and isinstance(item.get("referenceTime"), str)
                    and isinstance(item.get("observations"), list)):
                return "an item of 'data' lacks 'referenceTime' or 'observations'"
        return None

    def fetch(self, http, lat: float, lon: float, start: date, end: date) -> dict[datetime, dict[str, float]]:
        if not self.client_id:
            raise WeatherUnavailable("MET Norway's Frost needs a client id: set FROST_CLIENT_ID "
                                     "(free at frost.met.no), or use --weather-provider open-meteo")
        auth = (self.client_id, "")
        src = http.get(f"{self.url}/sources/v0.jsonld", auth=auth, params={
            "types": "SensorSystem", "geometry": f"nearest(POINT({lon:.4f} {lat:.4f}))", "nearestmaxcount": "1"})
        station = _checked(self, src)["data"][0]["id"]
        obs = http.get(f"{self.url}/observations/v0.jsonld", auth=auth, params={
            "sources": station, "referencetime": f"{start.isoformat()}/{(end + timedelta(days=1)).isoformat()}",
            "elements": ",".join(v.frost for v in VARIABLES if v.frost)})
        if obs.status_code == 404:  # Frost's answer when the station has none of those observations
            return {}
        names = {v.frost: v.column for v in VARIABLES if v.frost}
        out: dict[datetime, dict[str, float]] = {}
        for item in _checked(self, obs)["data"]:
            hour = datetime.fromisoformat(item["referenceTime"].replace("Z", "+00:00")).replace(minute=0, second=0,
                                                                                               microsecond=0)
            row = out.setdefault(hour, dict.fromkeys(COLUMNS))
            for o in item["observations"]:
                col = names.get(o.get("elementId"))
                if col and row[col] is None:
                    value = o.get("value")
                    row[col] = value * 12.5 if col == "cloud_cover_pct" and value is not None else value  # oktas
        return out


PROVIDERS = {"open-meteo": OpenMeteo, "met-frost": Frost}


def _cell(lat: float, lon: float, grid: float) -> tuple[float, float]:
    return round(round(lat / grid) * grid, 4), round(round(lon / grid) * grid, 4)


def _ranges(days: set[date]) -> list[tuple[date, date]]:
    out: list[tuple[date, date]] = []
    for d in sorted(days):
        if out and (d - out[-1][1]).days <= MAX_RANGE_GAP_DAYS:
            out[-1] = (out[-1][0], d)
        else:
            out.append((d, d))
    return out


def schema(days_back: int):
    """The weather table: one row per event, with ``weather_note`` saying why an event has no weather and
    ``weather_missing`` naming the columns its provider left empty at the event's hour."""
    import pyarrow as pa  # noqa: PLC0415

    extra = [(f"precipitation_prev_{days_back}d_mm", pa.float64()),
             (f"temperature_mean_prev_{days_back}d_c", pa.float64())] if days_back else []
    return pa.schema([("cluster_id", pa.string()), ("weather_provider", pa.string()),
                      ("weather_time", pa.timestamp("us", tz="UTC"))]
                     + [(c, pa.float64()) for c in COLUMNS] + extra
                     + [("weather_missing", pa.string()), ("weather_note", pa.string())])


def _out_of_range(ev: dict[str, Any], provider, today: date) -> str | None:
    """Why an event's dates cannot be asked for (None: they can)."""
    if ev.get("start_time") is None or ev.get("end_time") is None:
        return "the event has no time"
    if ev["end_time"].date() > today:
        return f"the event's date {ev['end_time'].date().isoformat()} is in the future: no weather archive has it"
    if ev["start_time"].date() < provider.earliest:
        return (f"the event's date {ev['start_time'].date().isoformat()} is before {provider.earliest.year}, "
                f"where {provider.name}'s archive begins")
    return None


def enrich(
    events: list[dict[str, Any]], coords: dict[str, tuple[float, float]], provider, days_back: int, http,
    today: date | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Weather per event (rows keyed by ``cluster_id``) and a summary (requests, cache hits, failures,
    warnings). Every event without weather has a ``weather_note``; each reason is one warning with a count."""
    today = today or datetime.now(UTC).date()
    notes: dict[str, str] = {}
    first_day: dict[str, date] = {}
    needed: dict[tuple[float, float], set[date]] = defaultdict(set)
    for ev in events:
        if ev["deployment_id"] not in coords:
            notes[ev["cluster_id"]] = "no coordinates for its deployment"
        elif why := _out_of_range(ev, provider, today):
            notes[ev["cluster_id"]] = why
        else:
            cell = _cell(*coords[ev["deployment_id"]], provider.grid)
            back = min(days_back, (ev["start_time"].date() - provider.earliest).days)  # not before the archive
            day = first_day[ev["cluster_id"]] = ev["start_time"].date() - timedelta(days=back)
            while day <= ev["end_time"].date():
                needed[cell].add(day)
                day += timedelta(days=1)
    ranges = {cell: _ranges(days) for cell, days in sorted(needed.items())}
    series: dict[tuple[float, float], dict[datetime, dict[str, float]]] = defaultdict(dict)
    unserved: dict[tuple, str] = {}  # (cell, start, end) -> why it has no answer
    summary: dict[str, Any] = {"requests": 0, "from_cache": 0, "failed": 0, "warnings": []}
    stop: str | None = None
    for cell, cell_ranges in ranges.items():
        for start, end in cell_ranges:
            if stop:
                unserved[cell, start, end] = stop
                continue
            try:
                series[cell].update(provider.fetch(_Counting(http, summary), *cell, start, end))
            except WeatherUnavailable as exc:
                stop = unserved[cell, start, end] = str(exc)
            except OutOfTime as exc:
                stop = unserved[cell, start, end] = f"stopped asking {provider.name}: {exc}"
            except BadAnswer as exc:
                summary["failed"] += 1
                unserved[cell, start, end] = (f"{provider.name} answered with something that is not the weather "
                                              f"asked for ({exc}); not cached, the next run asks again")
            except (OSError, ValueError, requests.RequestException) as exc:  # no network, an answer not JSON:
                # the run goes on without weather; anything else is a bug in Odin and fails the stage
                summary["failed"] += 1
                stop = unserved[cell, start, end] = (
                    f"{provider.name} could not be reached ({type(exc).__name__}: {str(exc)[:160]}); "
                    "answers fetched so far are cached for the next run")
    for ev in events:
        if ev["cluster_id"] in first_day:
            cell = _cell(*coords[ev["deployment_id"]], provider.grid)
            key = next((cell, a, b) for a, b in ranges[cell] if a <= first_day[ev["cluster_id"]] <= b)
            if key in unserved:
                notes[ev["cluster_id"]] = unserved[key]
    rows = _rows(events, coords, provider, days_back, series, notes)
    for why, count in Counter(r["weather_note"] for r in rows if r["weather_note"]).most_common():
        hint = "; give latitude/longitude in --deployments" if why.startswith("no coordinates") else ""
        summary["warnings"].append(f"weather: {count} of {len(rows)} event(s) without weather: {why}{hint}")
    for missing, count in Counter(r["weather_missing"] for r in rows if r["weather_missing"]).most_common():
        summary["warnings"].append(f"weather: {count} of {len(rows)} event(s) without {missing}: {provider.name} "
                                   "has no value for them at the event's hour (left empty, not filled)")
    return rows, summary


class _Counting:
    """Counts the requests that reached the network and the ones the cache answered."""

    def __init__(self, http, summary: dict[str, Any]):
        self.http, self.summary = http, summary

    def get(self, *args, **kwargs):
        resp = self.http.get(*args, **kwargs)
        self.summary["from_cache" if getattr(resp, "from_cache", False) else "requests"] += 1
        return resp


def _rows(events, coords, provider, days_back, series, notes) -> list[dict[str, Any]]:
    rows = []
    for ev in events:
        row: dict[str, Any] = {"cluster_id": ev["cluster_id"], "weather_provider": provider.name,
                               "weather_time": None, **dict.fromkeys(COLUMNS), "weather_missing": None}
        if days_back:
            row.update({f"precipitation_prev_{days_back}d_mm": None, f"temperature_mean_prev_{days_back}d_c": None})
        row["weather_note"] = notes.get(ev["cluster_id"])
        cell_series = series.get(_cell(*coords[ev["deployment_id"]], provider.grid)) \
            if row["weather_note"] is None else None
        if cell_series:
            hour = ev["start_time"].replace(minute=0, second=0, microsecond=0)
            if hour in cell_series:
                row["weather_time"] = hour
                row.update(cell_series[hour])
                row["weather_missing"] = ", ".join(c for c in COLUMNS if row[c] is None) or None
            if days_back:
                before = [cell_series[h] for h in cell_series if hour - timedelta(days=days_back) <= h < hour]
                rain = [b["precipitation_mm"] for b in before if b["precipitation_mm"] is not None]
                temp = [b["temperature_c"] for b in before if b["temperature_c"] is not None]
                row[f"precipitation_prev_{days_back}d_mm"] = round(math.fsum(rain), 2) if rain else None
                row[f"temperature_mean_prev_{days_back}d_c"] = round(math.fsum(temp) / len(temp), 2) if temp else None
        if row["weather_note"] is None and row["weather_time"] is None:
            row["weather_note"] = f"{provider.name} has no value for the event's hour"
        rows.append(row)
    return rows
