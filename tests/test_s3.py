"""The same pipeline over s3:// URIs, against a real S3 API (moto server on loopback)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from conftest import BUCKET, SAMPLE, odin


def test_run_reads_and_writes_s3(s3_env, tmp_path):
    env, client = s3_env
    for path in sorted((SAMPLE / "photos").rglob("*.JPG")):
        client.upload_file(str(path), BUCKET, f"cards/{path.parent.name}/{path.name}")
    client.put_object(Bucket=BUCKET, Key="cards/62c200a9/broken.jpg", Body=b"")
    out = f"s3://{BUCKET}/runs/one"
    result = odin("run", "--input", f"s3://{BUCKET}/cards", "--output", out, "--budget", "25",
                  "--deployments", str(SAMPLE / "deployments.csv"), "--detector", "motion", env=env)
    assert result.returncode == 0, result.stderr
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix="runs/one/")["Contents"]}
    assert {"runs/one/images.parquet", "runs/one/detections.parquet", "runs/one/clusters.parquet",
            "runs/one/run_report.json"} <= keys
    report = json.loads(client.get_object(Bucket=BUCKET, Key="runs/one/run_report.json")["Body"].read())
    assert report["images"]["by_status"] == {"ok": 10, "failed": 1}
    assert report["final_results"]["report_uri"] == f"{out}/run_report.json"
    local = Path(tmp_path / "images.parquet")
    client.download_file(BUCKET, "runs/one/images.parquet", str(local))
    rows = pq.read_table(local).to_pylist()
    assert {r["uri"] for r in rows if r["status"] == "ok"} == {
        f"s3://{BUCKET}/cards/62c200a9/{p.name}" for p in (SAMPLE / "photos" / "62c200a9").glob("*.JPG")}
