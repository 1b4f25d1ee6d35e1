"""HTTP for the weather stage with bounded time: no remote call can hang or stall a run.

Every request has a total deadline (connect to last byte, not per read: a server that trickles one byte a
second still stops at it), the stage has one too (its own limit or ``--max-job-duration``), retries on
429 and 5xx wait at most ``max_wait_s`` whatever ``Retry-After`` asks, and never past the stage's deadline.
Imported only by runs that ask for weather (``weather.session``).
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import HTTPError as Urllib3Error

from wildlife.weather import OutOfTime

RETRY_STATUSES = (429, 500, 502, 503, 504)
CONNECT_S = 10.0  # one connection attempt
READ_S = 30.0  # one read of the socket; the whole answer is bounded by request_s
CHUNK = 64 * 1024


class BoundedAdapter(HTTPAdapter):
    """Sends with a whole-response deadline and retries on 429/5xx with capped waits.

    ``deadline`` is a ``time.monotonic()`` value after which no request starts and no wait ends (None: no
    stage limit; ``limit`` names it in messages); a request past it raises ``OutOfTime``. A request longer
    than ``request_s`` raises ``requests.Timeout``. Connection errors and retryable statuses are tried
    ``retries`` more times.
    """

    def __init__(self, *, deadline: float | None, limit: str, request_s: float, max_wait_s: float, retries: int,
                 backoff: float):
        super().__init__(max_retries=0)
        self.deadline, self.limit, self.request_s, self.max_wait_s = deadline, limit, request_s, max_wait_s
        self.retries, self.backoff = retries, backoff

    def send(self, request, stream=False, timeout=None, **kwargs):
        attempt = 0
        while True:
            end = time.monotonic() + self.request_s
            if self.deadline is not None:
                end = min(end, self.deadline)
            left = end - time.monotonic()
            if left <= 0:
                raise OutOfTime(f"{self.limit} was reached")
            try:
                resp = super().send(request, stream=True, timeout=(min(CONNECT_S, left), min(READ_S, left)),
                                    **kwargs)
            except requests.ConnectionError:
                if attempt >= self.retries:
                    raise
                self._wait(self.backoff * 2 ** attempt, None)
                attempt += 1
                continue
            if resp.status_code in RETRY_STATUSES and attempt < self.retries:
                asked = retry_after(resp.headers.get("Retry-After"))
                resp.close()
                self._wait(asked if asked is not None else self.backoff * 2 ** attempt, asked)
                attempt += 1
                continue
            if not stream:
                self._read_all(resp, end)
            return resp

    def _wait(self, seconds: float, asked: float | None) -> None:
        wait = min(max(seconds, 0.0), self.max_wait_s)
        if self.deadline is not None and time.monotonic() + wait > self.deadline:
            why = f"the server asked to wait {asked:g} s (Retry-After)" if asked is not None else \
                f"a retry would wait {wait:g} s"
            raise OutOfTime(f"{why}, past {self.limit}")
        time.sleep(wait)

    def _read_all(self, resp, end: float) -> None:
        """Read the body into ``resp`` (as ``stream=False`` does), stopping at ``end``."""
        chunks = []
        sock = getattr(getattr(resp.raw, "connection", None), "sock", None)
        while True:
            left = end - time.monotonic()
            if left <= 0:
                resp.close()
                if self.deadline is not None and end >= self.deadline:
                    raise OutOfTime(f"{self.limit} was reached while an answer was arriving")
                raise requests.Timeout(f"the whole answer took longer than {self.request_s:g} s")
            try:
                if sock is not None:
                    sock.settimeout(left)  # one slow read cannot outlast the deadline either
                chunk = resp.raw.read1(CHUNK, decode_content=True)
            except (Urllib3Error, OSError) as exc:
                if time.monotonic() >= end:
                    continue  # the socket timed out at the deadline: say so above
                resp.close()
                raise requests.ConnectionError(f"the answer broke off: {exc}") from exc
            if not chunk:
                break
            chunks.append(chunk)
        resp._content = b"".join(chunks)
        resp._content_consumed = True
        resp.raw.release_conn()


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None
