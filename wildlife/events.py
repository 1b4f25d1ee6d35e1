"""Events: a deployment's photos grouped into visits, and which visits are independent records.

Default method (``gap``), the field's convention: a deployment's photos (all of them, positive or not) ordered by
time are cut wherever two consecutive photos are more than ``event_gap_s`` (120 s) apart. That is how Agouti
groups media into the sequences whose identifiers become Camtrap DP's ``eventID`` (the Camtrap DP 0.5 example,
an Agouti export, declares ``"sequenceInterval": 120``), and how MegaDetector synthesises sequences
(``cct_json_utils.SequenceOptions.episode_interval_seconds``, 60 s). A sequence with at least one positive photo
is an event, and every photo of it carries the event's id (Agouti gives the blank media of an animal sequence
that sequence's eventID too); a sequence without a positive photo is no event. Membership depends only on the
gaps between neighbours: photos added more than ``event_gap_s`` away, or at another deployment, never change
existing events.

Optional method (``hdbscan``), per deployment over positive photos only:

1. Positive photos are ordered by time and cut into bursts wherever two photos are more than ``burst_gap_s``
   apart (60 s). A burst is never split: it is the unit that is clustered.
2. The bursts' start times are clustered with HDBSCAN (``min_cluster_size=2``, ``min_samples=1``,
   ``cluster_selection_epsilon`` = ``merge_gap_s``). Where hdbscan is not installed, or a deployment has fewer
   than 3 bursts, the plain gap rule stands in: bursts less than ``merge_gap_s`` apart share an event.
3. The gap rule bounds the clustering on both sides: bursts less than ``merge_gap_s`` apart always share an
   event, and an event is always cut where consecutive bursts are more than ``max_gap_s`` apart (30 min). So
   HDBSCAN decides only the gaps between ``merge_gap_s`` and ``max_gap_s``: it joins them in busy periods, splits
   them in quiet ones, which is why its events differ from other tools' and can change when photos are added
   nearby. ``compare`` counts how many fixed-gap events it merged or split.

Independence is a separate rule and follows camtrapR's ``minDeltaTime``: per deployment and category, an event
is an independent record when it starts at least ``independence_s`` (30 min) after the last independent record
of that category started.
"""

from __future__ import annotations

import importlib.util
import itertools
from dataclasses import dataclass
from functools import cache

import numpy as np


@cache
def _hdbscan():
    """The hdbscan module, imported on first use (it pulls in scikit-learn), or None when not installed."""
    if importlib.util.find_spec("hdbscan") is None:
        return None  # the documented fallback: the gap rule
    import hdbscan  # noqa: PLC0415

    return hdbscan


@dataclass(frozen=True)
class EventRules:
    event_gap_s: float = 120.0  # gap method: Agouti's sequence interval
    burst_gap_s: float = 60.0
    merge_gap_s: float = 300.0
    max_gap_s: float = 1800.0
    independence_s: float = 1800.0
    method: str = "gap"  # or "hdbscan"

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown events method {self.method!r}; choose one of {METHODS}")

    def describe(self) -> str:
        if self.method == "gap":
            return (f"gap: consecutive photos <= {self.event_gap_s:g} s apart share an event; "
                    f"independence {self.independence_s:g} s")
        used = "hdbscan" if _hdbscan() is not None else "merge gap (hdbscan missing)"
        return (f"{used}; bursts {self.burst_gap_s:g} s, merge {self.merge_gap_s:g} s, "
                f"cut at {self.max_gap_s:g} s, independence {self.independence_s:g} s")


METHODS = ("gap", "hdbscan")


def _ordered(group: np.ndarray, seconds: np.ndarray):
    """An all ``-1`` result array, and the rows with a group (``group >= 0``) sorted by group then time, with
    their groups and times in that order."""
    out = np.full(len(group), -1, dtype=np.int64)
    idx = np.flatnonzero(group >= 0)
    order = idx[np.lexsort((seconds[idx], group[idx]))]
    return out, order, group[order], seconds[order].astype(np.float64)


def assign_gap(group: np.ndarray, seconds: np.ndarray, positive: np.ndarray, gap_s: float,
               ends: np.ndarray | None = None) -> np.ndarray:
    """An event number per row by the fixed gap (0, 1, ... across all groups; -1 where none).

    ``group``: integer deployment code per row, -1 for rows that take part in no sequence (no usable time).
    Rows of one group are cut where consecutive times are more than ``gap_s`` apart; a sequence is an event when
    ``positive`` holds for one of its rows, and then all its rows carry the event's number. ``ends``: each
    row's end where it lasts (a video): the gap to the next row counts from the latest end so far.
    """
    out, order, g, t = _ordered(group, seconds)
    if order.size == 0:
        return out
    cut = np.ones(len(order), dtype=bool)
    if ends is None:
        cut[1:] = (g[1:] != g[:-1]) | (t[1:] - t[:-1] > gap_s)
    else:
        e = np.maximum(ends[order].astype(np.float64), t)
        latest = np.empty_like(e)
        bounds = [*np.flatnonzero(np.r_[True, g[1:] != g[:-1]]).tolist(), len(e)]
        for lo, hi in itertools.pairwise(bounds):  # the latest end so far, within each group
            latest[lo:hi] = np.maximum.accumulate(e[lo:hi])
        cut[1:] = (g[1:] != g[:-1]) | (t[1:] - latest[:-1] > gap_s)
    sequence = np.cumsum(cut) - 1
    has_positive = np.zeros(int(sequence[-1]) + 1, dtype=bool)
    has_positive[sequence[positive[order]]] = True
    number = np.cumsum(has_positive) - 1
    out[order] = np.where(has_positive[sequence], number[sequence], -1)
    return out


def compare(reference: np.ndarray, other: np.ndarray) -> dict[str, int]:
    """How ``other``'s events differ from ``reference``'s over the rows both put in an event.

    ``merged``: events of ``other`` holding rows of more than one reference event; ``split``: reference events
    whose rows lie in more than one event of ``other``.
    """
    both = (reference >= 0) & (other >= 0)
    pairs = np.unique(np.column_stack([reference[both], other[both]]), axis=0) if both.any() else np.empty((0, 2))
    per_other = np.unique(pairs[:, 1], return_counts=True)[1]
    per_reference = np.unique(pairs[:, 0], return_counts=True)[1]
    return {"reference_events": len(np.unique(reference[reference >= 0])),
            "events": len(np.unique(other[other >= 0])),
            "merged": int((per_other > 1).sum()), "split": int((per_reference > 1).sum())}


def assign(group: np.ndarray, seconds: np.ndarray, rules: EventRules = EventRules()) -> np.ndarray:
    """HDBSCAN's event number per row (0, 1, ... across all groups; -1 where ``group`` is negative).

    ``group``: integer deployment code per row (-1 for rows that take part in no event, e.g. not positive).
    ``seconds``: time of each row in seconds (any epoch).
    """
    out, order, g, t = _ordered(group, seconds)
    if order.size == 0:
        return out
    new_group = np.ones(len(order), dtype=bool)
    new_group[1:] = g[1:] != g[:-1]
    gap = np.zeros(len(order))
    gap[1:] = t[1:] - t[:-1]
    burst_start = new_group | (gap > rules.burst_gap_s)
    burst_of_row = np.cumsum(burst_start) - 1
    b_time = t[burst_start]
    b_group = g[burst_start]
    b_new_group = new_group[burst_start]
    b_gap = np.zeros(len(b_time))
    b_gap[1:] = b_time[1:] - b_time[:-1]
    # gap from the previous burst's *last* photo, so a long burst does not look like a gap
    last_t = np.zeros(len(b_time))
    np.maximum.at(last_t, burst_of_row, t)
    b_gap_end = np.zeros(len(b_time))
    b_gap_end[1:] = b_time[1:] - last_t[:-1]

    labels = _labels(b_time, b_group, b_new_group, b_gap_end, rules)
    cut = b_new_group.copy()
    split = (labels[1:] != labels[:-1]) | (labels[1:] < 0)
    cut[1:] |= (split & (b_gap_end[1:] > rules.merge_gap_s)) | (b_gap_end[1:] > rules.max_gap_s)
    event_of_burst = np.cumsum(cut) - 1
    out[order] = event_of_burst[burst_of_row]
    return out


def _labels(b_time, b_group, b_new_group, b_gap_end, rules: EventRules) -> np.ndarray:
    """A cluster label per burst, unique across groups (-1 for noise)."""
    hdbscan = _hdbscan() if rules.method == "hdbscan" else None
    if hdbscan is None:
        return np.cumsum(b_new_group | (b_gap_end > rules.merge_gap_s))
    labels = np.empty(len(b_time), dtype=np.int64)
    starts = [*np.flatnonzero(b_new_group).tolist(), len(b_time)]
    offset = 0
    for lo, hi in itertools.pairwise(starts):
        if hi - lo < 3:  # too few bursts to estimate density: gap rule
            local = np.cumsum(np.concatenate([[True], b_gap_end[lo + 1:hi] > rules.merge_gap_s]))
        else:
            x = ((b_time[lo:hi] - b_time[lo]) / 60.0)[:, None]  # minutes
            local = hdbscan.HDBSCAN(min_cluster_size=2, min_samples=1,
                                     cluster_selection_epsilon=rules.merge_gap_s / 60.0).fit_predict(x)
        labels[lo:hi] = np.where(local >= 0, local + offset, -1)
        offset += int(local.max()) + 1 if len(local) else 0
    return labels


def independence(group: np.ndarray, category: np.ndarray, start_s: np.ndarray, interval_s: float) -> np.ndarray:
    """Per event: True where it is an independent record (camtrapR ``minDeltaTime``, last independent record)."""
    out = np.zeros(len(group), dtype=bool)
    order = np.lexsort((start_s, category, group))
    last: dict[tuple, float] = {}
    for i in order.tolist():
        key = (group[i], category[i])
        if key not in last or start_s[i] - last[key] >= interval_s:
            out[i] = True
            last[key] = start_s[i]
    return out
