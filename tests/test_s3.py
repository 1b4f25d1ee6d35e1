"""The same pipeline over s3:// URIs, against a real S3 API (moto server on loopback)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pyarrow.parquet as pq
import pytest
from conftest import SAMPLE, odin

BUCKET = "odin-test-data"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_env():
    port = _free_port()
    server = shutil.which("moto_server", path=os.path.dirname(sys.executable)) or shutil.which("moto_server")
    if server is None:
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    proc = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = dict(os.environ, AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="eu-north-1")
    deadline = time.monotonic() + 30
    while True:
        try:
            client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="eu-north-1",
                                  aws_access_key_id="testing", aws_secret_access_key="testing")
            client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-north-1"})
            break
        except Exception:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.2)
    yield env, client
    proc.terminate()
    proc.wait(timeout=10)


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
