"""The same pipeline over s3:// URIs, against a real S3 API (moto server on loopback)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
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


def _store_settings(how: str, env: dict, folder: Path) -> dict:
    """The environment of a user whose S3-compatible store is configured the standard way, for boto3: an
    environment variable, or a profile in ~/.aws/config (`aws configure set endpoint_url ... --profile store`)."""
    store = {k: v for k, v in env.items() if not k.startswith("AWS_")}  # no region either: MinIO needs none
    if how == "environment":
        return dict(store, AWS_ENDPOINT_URL_S3=env["AWS_ENDPOINT_URL"], AWS_ACCESS_KEY_ID="testing",
                    AWS_SECRET_ACCESS_KEY="testing")
    config = folder / "config"
    config.write_text(f"[profile store]\nendpoint_url = {env['AWS_ENDPOINT_URL']}\naws_access_key_id = testing\n"
                      "aws_secret_access_key = testing\n")
    return dict(store, AWS_CONFIG_FILE=str(config), AWS_SHARED_CREDENTIALS_FILE=str(folder / "none"),
                AWS_PROFILE="store")


@pytest.mark.parametrize("how", ["environment", "profile"])
def test_a_local_run_against_any_s3_compatible_store(s3_env, tmp_path, how):
    """MinIO, Ceph or a university's object store, given the standard endpoint setting that boto3 reads:
    input, deployments and output all on the store, every file listed once, every output written there."""
    env, client = s3_env
    store = _store_settings(how, env, tmp_path)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    photos = sorted((SAMPLE / "photos").rglob("*.JPG"))
    for path in photos:
        client.upload_file(str(path), BUCKET, f"store/cards/{path.parent.name}/{path.name}")
    others = {"store/cards/62c200a9/notes.txt": b"visited 2021-03-01", "store/cards/62c200a9/broken.jpg": b"",
              "store/cards/62c200a9/.DS_Store": b"\0\0\0\1Bud1"}
    for key, body in others.items():
        client.put_object(Bucket=BUCKET, Key=key, Body=body)
    client.upload_file(str(SAMPLE / "deployments.csv"), BUCKET, "store/deployments.csv")
    out = f"s3://{BUCKET}/store/runs/{how}"
    result = odin("run", "--target", "local", "--input", f"s3://{BUCKET}/store/cards", "--output", out,
                  "--deployments", f"s3://{BUCKET}/store/deployments.csv", "--budget", "25", "--detector", "motion",
                  "--weather-provider", "none", env=store, cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert list(cwd.iterdir()) == []  # nothing written beside the command: all of it went to the store
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix=f"store/runs/{how}/")["Contents"]}
    report = json.loads(client.get_object(Bucket=BUCKET, Key=f"store/runs/{how}/run_report.json")["Body"].read())
    created = report["final_results"]["files_created"]
    assert {"images.parquet", "detections.parquet", "clusters.parquet", "report.html", "megadetector.json",
            "run_report.json"} <= {uri.rsplit("/", 1)[1] for uri in created}
    assert {uri.removeprefix(f"s3://{BUCKET}/") for uri in created} <= keys
    local = tmp_path / "images.parquet"
    client.download_file(BUCKET, f"store/runs/{how}/images.parquet", str(local))
    rows = pq.read_table(local).to_pylist()
    local.unlink()
    uris = [r["uri"] for r in rows]
    expected = [f"s3://{BUCKET}/store/cards/{p.parent.name}/{p.name}" for p in photos]
    assert sorted(uris) == sorted(expected + [f"s3://{BUCKET}/{key}" for key in others])  # each exactly once
    by_uri = {r["uri"]: r for r in rows}
    assert all(by_uri[uri]["status"] == "ok" for uri in expected)
    assert by_uri[f"s3://{BUCKET}/store/cards/62c200a9/broken.jpg"]["status"] == "failed"
    assert {by_uri[f"s3://{BUCKET}/store/cards/62c200a9/{n}"]["status"] for n in ("notes.txt", ".DS_Store")} == {
        "skipped"}
    assert {r["deployment_id"] for r in rows if r["status"] == "ok"} == {p.parent.name for p in photos}


def test_a_file_that_fails_while_it_is_written_leaves_the_object_before_it_untouched(s3_env, monkeypatch):
    """megadetector.json and the Camtrap DP CSVs are streamed: an error (or Ctrl-C) half-way must not leave a
    truncated object that looks like the result, on S3 as on a disk."""
    env, client = s3_env
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    from wildlife import fs  # noqa: PLC0415 - after the store's environment is set

    uri = f"s3://{BUCKET}/runs/stream/megadetector.json"
    fs.write_json(uri, {"images": iter([{"file": "a.jpg"}])})
    good = client.get_object(Bucket=BUCKET, Key="runs/stream/megadetector.json")["Body"].read()

    def images():
        for i in range(3):
            yield {"file": f"{i}.jpg", "padding": "x" * 700_000}  # past the writer's 1 MB pieces
        raise RuntimeError("the disk under the detections went away")

    with pytest.raises(RuntimeError, match="went away"):
        fs.write_json(uri, {"images": images()})
    assert client.get_object(Bucket=BUCKET, Key="runs/stream/megadetector.json")["Body"].read() == good
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix="runs/stream/")["Contents"]]
    assert not [k for k in keys if ".tmp-" in k]  # no temporary object left behind
