"""A 1,000,000-photo run against the service limits: shard counts and payload sizes, on generated tables."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from wildlife import budget, fs, stages

N = 1_000_000
LAMBDA_LIMIT_S = 900
ARRAY_LIMIT = 10_000
PAYLOAD_LIMIT = 256 * 1024
S3_READ_S = 0.03  # a header range read from S3, pessimistic


@pytest.fixture(scope="module")
def million(tmp_path_factory):
    run = tmp_path_factory.mktemp("million")
    ids = pa.array([f"{i:016x}" for i in range(N)])
    manifest = pa.table({
        "photo_id": ids, "relpath": pa.array([f"dep{i % 1000:04d}/IMG_{i:07d}.JPG" for i in range(N)]),
        "uri": pa.array([f"s3://bucket/input/dep{i % 1000:04d}/IMG_{i:07d}.JPG" for i in range(N)]),
        "uri_raw": pa.nulls(N, pa.binary()), "size": pa.repeat(pa.scalar(2_000_000, pa.int64()), N),
        "mtime": pa.repeat(pa.scalar(0.0), N), "status": pa.repeat(pa.scalar("pending"), N),
        "reason": pa.nulls(N, pa.string()),
    })
    fs.write_table(manifest, str(run / "_run" / "manifest.parquet"))
    media = manifest.set_column(manifest.schema.get_field_index("status"), "status", pa.repeat(pa.scalar("ok"), N))
    fs.write_table(media, str(run / "_run" / "media.parquet"))
    params = {"input_uri": "s3://bucket/input", "output_uri": str(run), "budget_dkk": 10_000.0, "use_spot": True,
              "target": "aws", "detector": "megadetector", "sequence_gap_s": 60.0}
    return {"params": params, "session_id": "scale",
            "GuardBudget": {"manifest_uri": str(run / "_run" / "manifest.parquet")},
            "Stage0Exif": {"media_uri": str(run / "_run" / "media.parquet")}}


def test_stage0_distributed_map_shards_fit_lambda(million):
    shards = stages.stage0_shards(N)
    assert shards == N // stages.PHOTOS_PER_STAGE0_SHARD
    assert stages.PHOTOS_PER_STAGE0_SHARD * S3_READ_S < LAMBDA_LIMIT_S / 2  # each item well inside 15 minutes
    pending, _ = stages._pending(million)
    sizes = [len(pending[i * stages.PHOTOS_PER_STAGE0_SHARD:(i + 1) * stages.PHOTOS_PER_STAGE0_SHARD])
             for i in range(shards)]
    assert sum(sizes) == N and max(sizes) == stages.PHOTOS_PER_STAGE0_SHARD  # every photo in exactly one item


def test_stage1_array_job_fits_batch_and_payloads_fit_step_functions(million):
    payload = stages.cost_estimation(million, stages.Context())
    assert payload["photos"] == N
    assert 2 <= payload["array_size"] <= ARRAY_LIMIT
    assert payload["array_size"] * budget.PHOTOS_PER_SHARD >= N  # the shards cover every photo
    state = dict(million, CostEstimation=payload)
    state["GuardBudget"] = dict(state["GuardBudget"], photos=N, stage0_shards=stages.stage0_shards(N),
                                shards_bucket="bucket", shards_key="runs/x/_run/stage0-shards.json",
                                estimate=payload["estimate"])
    size = len(json.dumps(state))
    assert size < PAYLOAD_LIMIT / 10, size  # the whole execution state, not just one payload, stays tiny
