"""How fast this machine reads headers (Stage 0) and runs the detector, timed on the first photos of the input.

The local estimate multiplies these rates by the photo count (``budget.estimate(measured=...)``); a price
table cannot know this CPU, these photo sizes or which detector ``auto`` turns into. Cheap by design: a
dozen photos, a few seconds; a fast detector (the motion baseline) goes over them again until a second is
timed, a slow one (MegaDetector on CPU) is timed on fewer. Inputs too small to
be worth it get ``{"skipped": why}`` and the estimate uses the table's rates.
"""

from __future__ import annotations

import time
from typing import Any

from wildlife import detect, exif, stage0, stage1

PHOTOS = 12  # timed at most
MIN_INPUT = 4 * PHOTOS  # smaller inputs take seconds whatever the rate: the table's rates serve
BUDGET_S = 5.0  # a slow detector stops being timed after this, once it has timed two photos
MIN_TIMED_S, MAX_ROUNDS = 1.0, 20  # a fast detector is timed over the same photos until this much is timed
SOURCE = "calibrated on this machine"


def calibrate(pending: list[dict[str, Any]], detector: str, sequence_gap_s: float,
              max_megapixels: float = exif.DEFAULT_MAX_MEGAPIXELS) -> dict[str, Any]:
    """Rates (ms per photo) of Stage 0 and of the detector ``detector`` resolves to, on the first photos of
    ``pending`` (manifest rows), and ``setup_s``: loading the detector and its first, slower call."""
    if len(pending) < MIN_INPUT:
        return {"skipped": f"{len(pending)} photos are too few to time (calibration needs {MIN_INPUT})"}
    sample = pending[:PHOTOS]  # consecutive in path order, so bursts stay whole for the motion baseline
    stage0.read_headers(sample[:1], {}, max_megapixels)  # first call: lazy set-up, paid once per process
    t0 = time.perf_counter()
    rows = stage0.read_headers(sample, {}, max_megapixels)
    stage0_s = time.perf_counter() - t0
    photos = stage1.photos_to_detect(stage0.finish(rows), sequence_gap_s)
    if not photos:
        return {"skipped": f"none of the first {len(sample)} photos could be read"}
    t0 = time.perf_counter()
    model, _ = detect.load(detector)
    load_s = time.perf_counter() - t0
    first = _timed(model, photos[:1])  # warms up: first decode, lazy initialisation, a model's first run
    if model.context:  # the motion baseline compares a burst's frames: time them together,
        rounds, det_s = 0, 0.0  # again until a second is timed: a tenth of a second says little on a busy CPU
        while det_s < MIN_TIMED_S and rounds < MAX_ROUNDS:
            det_s += _timed(model, photos)
            rounds += 1
        timed, det_s = len(photos), det_s / rounds
        setup_s = 0.0  # it has no model: loading it was imports, which the run does not pay twice
    else:  # a model: loaded again by Stage 1, and slower on its first call
        timed, det_s = 0, 0.0
        for photo in photos[1:]:
            det_s += _timed(model, [photo])
            timed += 1
            if det_s + first >= BUDGET_S and timed >= 2:
                break
        if timed == 0:
            timed, det_s = 1, first
        setup_s = load_s + max(first - det_s / timed, 0.0)
    return {"stage0": rate(stage0_s, len(sample), SOURCE), "detector": rate(det_s, timed, SOURCE),
            "setup_s": round(setup_s, 3)}


def rate(seconds: float, photos: int, source: str) -> dict[str, Any]:
    """One rate as the estimate records it."""
    return {"ms_per_photo": round(seconds / max(photos, 1) * 1000, 3), "photos_timed": photos, "source": source}


def _timed(model, photos: list[dict[str, Any]]) -> float:
    t0 = time.perf_counter()
    model.detect(photos)
    return time.perf_counter() - t0
