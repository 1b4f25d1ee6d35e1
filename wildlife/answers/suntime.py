"""Clock time and sun time of a record.

Clock time: the hour of day (0..24) on the deployment's clock (its fixed UTC offset, or its zone for a clock
that follows daylight saving time: ``tables.local_zone``).

Sun time: the "double anchoring" of Vazquez et al. (2019, Methods Ecol. Evol. 10:2057), also called equinoctial
time (Nouvellet et al. 2012, J. Zool. 286:179): sunrise maps to 06:00 and sunset to 18:00 on every day, the
day between them stretched linearly onto 06..18 and the night from sunset to the next sunrise onto 18..06. So
a record an hour after sunrise is at about 07:00 whatever the season or latitude, and records from months or
places with other day lengths can be pooled. Sunrise and sunset are astral's (``astral==3.2``, offline: the
NOAA solar equations, the sun's upper limb at the horizon with standard refraction, as almanacs give them) at
the deployment's location on the record's local date. Where the sun does not rise or set that day (polar day
or night), or the deployment has no location, sun time is empty and ``sun_note`` says why.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache

from astral import Observer
from astral.sun import sunrise, sunset


def clock_hour(when: datetime, zone: tzinfo) -> float:
    """Hour of day (0 <= h < 24) on the deployment's clock."""
    local = when.astimezone(zone)
    return local.hour + local.minute / 60 + (local.second + local.microsecond / 1e6) / 3600


@lru_cache(maxsize=65536)
def sun_events(lat: float, lon: float, day: date, zone: tzinfo) -> tuple[datetime, datetime]:
    """(sunrise, sunset) in UTC on the local ``day`` at the point; raises ValueError where the sun does not rise
    or set that day. In UTC, so a night across a daylight-saving change has its real length (Python subtracts
    two times of one ZoneInfo as wall clocks)."""
    observer = Observer(latitude=lat, longitude=lon)
    return (sunrise(observer, day, tzinfo=zone).astimezone(UTC), sunset(observer, day, tzinfo=zone).astimezone(UTC))


def sun_hour(when: datetime, lat: float, lon: float, zone: tzinfo) -> tuple[float | None, str | None]:
    """(sun time in hours 0..24 with sunrise at 6 and sunset at 18, None and why where it has none)."""
    day = when.astimezone(zone).date()
    try:
        rise, set_ = sun_events(lat, lon, day, zone)
        if when < rise:
            start, end = sun_events(lat, lon, day - timedelta(days=1), zone)[1], rise
            return _map(when, start, end, 18.0), None
        if when >= set_:
            start, end = set_, sun_events(lat, lon, day + timedelta(days=1), zone)[0]
            return _map(when, start, end, 18.0), None
        return _map(when, rise, set_, 6.0), None
    except ValueError as exc:
        return None, f"no sunrise or sunset on {day.isoformat()} at {lat:.3f}, {lon:.3f}: {exc}"


def _map(when: datetime, start: datetime, end: datetime, offset: float) -> float:
    """``when`` between two sun events mapped linearly onto 12 hours from ``offset``."""
    share = (when - start).total_seconds() / (end - start).total_seconds()
    return (offset + 12.0 * share) % 24.0
