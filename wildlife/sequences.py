"""Sequences: a deployment's photos split wherever the gap between two photos exceeds a threshold.

This is the classic camera-trap sequence rule (60 s by default). Stage 1's motion baseline uses it to find
the photos it compares; Stage 2 reports one cluster per sequence.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

DEFAULT_GAP_S = 60.0


def assign(media: pa.Table, gap_s: float = DEFAULT_GAP_S) -> pa.Array:
    """A sequence id per row (null for rows that are not ok photos), like ``dep:00001``.

    Rows are grouped by deployment (or by folder where no deployment is known), ordered by time then path.
    """
    n = media.num_rows
    ok = np.asarray(pc.equal(media.column("status"), "ok").fill_null(False))
    deployment = media.column("deployment_id").to_pylist()
    relpath = media.column("relpath").to_pylist()
    group = [d if d is not None else "folder:" + (p.rsplit("/", 1)[0] if "/" in p else ".")
             for d, p in zip(deployment, relpath, strict=True)]
    ts = media.column("timestamp").cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return pa.nulls(n, pa.string())
    groups = np.array([group[i] for i in idx], dtype=object)
    codes, names = _factorize(groups)
    paths = np.array([relpath[i] for i in idx], dtype=object)
    order = np.lexsort((paths, ts[idx], codes))
    sorted_idx, sorted_codes, sorted_ts = idx[order], codes[order], ts[idx][order]
    new_group = np.ones(len(order), dtype=bool)
    new_group[1:] = sorted_codes[1:] != sorted_codes[:-1]
    gap = np.zeros(len(order), dtype=np.int64)
    gap[1:] = sorted_ts[1:] - sorted_ts[:-1]
    starts = new_group | (gap > gap_s * 1e6)
    seq_counter = np.cumsum(starts)
    first_of_group = np.maximum.accumulate(np.where(new_group, seq_counter, 0))
    number = seq_counter - first_of_group + 1
    out: list[str | None] = [None] * n
    for i, code, num in zip(sorted_idx.tolist(), sorted_codes.tolist(), number.tolist(), strict=True):
        out[i] = f"{names[code]}:{num:05d}"
    return pa.array(out, pa.string())


def _factorize(values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    names = sorted(set(values.tolist()))
    lookup = {name: i for i, name in enumerate(names)}
    return np.array([lookup[v] for v in values.tolist()], dtype=np.int64), names
