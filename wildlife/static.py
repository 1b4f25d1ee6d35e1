"""Repeat-detection elimination: boxes that sit still for hours are branches and rocks, not animals.

Per deployment and category, boxes are grouped greedily with the first box of a group as its anchor
(IoU >= ``iou``). A group whose boxes come from at least ``min_photos`` photos spread over at least
``min_span_h`` hours is flagged ``suspected_static``: excluded from positives, kept in the outputs.
This is the idea of MegaDetector's repeat-detection elimination, done automatically and without the manual
review pass.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

CELL = 0.05  # anchors are looked up in a grid of this size; IoU >= 0.9 boxes are never more than a cell apart


def iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def flag(
    group: list, category: list, photo: list, seconds: np.ndarray, boxes: np.ndarray,
    *, min_iou: float = 0.9, min_photos: int = 10, min_span_h: float = 3.0,
) -> np.ndarray:
    """True for each detection (row) that belongs to a static group."""
    n = len(group)
    member = np.full(n, -1, dtype=np.int64)
    anchors: list[int] = []
    grid: dict[tuple, list[int]] = defaultdict(list)
    for i in range(n):
        box = boxes[i]
        cx, cy = int(box[0] / CELL), int(box[1] / CELL)
        key = (group[i], category[i])
        found = -1
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for a in grid.get((key, cx + dx, cy + dy), ()):
                    if iou(box, boxes[anchors[a]]) >= min_iou:
                        found = a
                        break
                if found >= 0:
                    break
            if found >= 0:
                break
        if found < 0:
            found = len(anchors)
            anchors.append(i)
            grid[(key, cx, cy)].append(found)
        member[i] = found
    static_groups = np.zeros(len(anchors), dtype=bool)
    photos: dict[int, set] = defaultdict(set)
    first = np.full(len(anchors), np.inf)
    last = np.full(len(anchors), -np.inf)
    for i in range(n):
        g = member[i]
        photos[g].add(photo[i])
        first[g] = min(first[g], seconds[i])
        last[g] = max(last[g], seconds[i])
    for g, ph in photos.items():
        if len(ph) >= min_photos and (last[g] - first[g]) >= min_span_h * 3600:
            static_groups[g] = True
    return static_groups[member] if n else np.zeros(0, dtype=bool)
