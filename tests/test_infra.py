"""The AWS deployment offline: synth, terraform validate against provider 5.100.0, the generated state
machine (structure and asl-validator), reproducible Lambda code, and the handlers against moto's S3."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from wildlife import asl
from wildlife.graph import BUDGET_STAGES, FAILURE_REPORT, GRAPH, LAMBDAS

sys.path.insert(0, str(ROOT))
from modules import terraform
from modules.checkov import suppressions
from modules.functions import HANDLERS

ASL_VALIDATOR = "asl-validator@4.0.0"


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """Both stacks, synthesised into a folder of this module's own (other tests apply stacks meanwhile)."""
    old = os.environ.get("ODIN_SYNTH_OUT")
    os.environ["ODIN_SYNTH_OUT"] = str(tmp_path_factory.mktemp("cdktf.out"))
    result = subprocess.run([sys.executable, "main.py"], cwd=ROOT, env=terraform.env(), capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    yield {name: json.loads((terraform.stack_dir(name) / "cdk.tf.json").read_text())
           for name in ("odin-aws", "odin-localstack")}
    if old is None:
        os.environ.pop("ODIN_SYNTH_OUT")
    else:
        os.environ["ODIN_SYNTH_OUT"] = old


def test_batch_instances_without_nat_can_reach_ecs(synth):
    # the aws profile has no NAT (egress: endpoints): without the ECS agent's three endpoints an instance never
    # registers with its cluster and every Stage 1 job waits in RUNNABLE forever
    endpoints = {e["service_name"].split(".", 3)[-1]
                 for e in synth["odin-aws"]["resource"]["aws_vpc_endpoint"].values()}
    assert {"ecs", "ecs-agent", "ecs-telemetry", "ecr.api", "ecr.dkr", "logs", "s3"} <= endpoints


@pytest.fixture(scope="module")
def synth_all(synth):
    """Every profile's stack, the cost-optimized one included (synthesised with the others)."""
    return {**synth, "odin-cost-optimized": json.loads(
        (terraform.stack_dir("odin-cost-optimized") / "cdk.tf.json").read_text())}


def _definition(stack: dict) -> dict:
    (machine,) = stack["resource"]["aws_sfn_state_machine"].values()
    return json.loads(machine["definition"])


def test_one_stack_per_profile_pinned_to_the_mirrors_provider(synth):
    for stack in synth.values():
        assert stack["terraform"]["required_providers"]["aws"]["version"] == "5.100.0"
        # one data source only: the account id, from the STS call the provider makes at plan time anyway
        assert set(stack.get("data", {})) == {"aws_caller_identity"}
    assert synth["odin-aws"]["terraform"]["backend"]["s3"]["dynamodb_table"]  # state locking
    assert "local" in synth["odin-localstack"]["terraform"]["backend"]
    aws = synth["odin-aws"]["resource"]
    assert {"aws_batch_compute_environment", "aws_budgets_budget", "aws_lambda_function"} <= set(aws)
    local = synth["odin-localstack"]["resource"]
    assert not {"aws_batch_compute_environment", "aws_budgets_budget", "aws_lambda_function"} & set(local)


def test_data_bucket_is_private_encrypted_tls_only_and_tiered(synth):
    res = synth["odin-aws"]["resource"]
    (block,) = res["aws_s3_bucket_public_access_block"].values()
    assert all(block[k] for k in ("block_public_acls", "block_public_policy", "ignore_public_acls",
                                  "restrict_public_buckets"))
    (policy,) = res["aws_s3_bucket_policy"].values()
    assert '"aws:SecureTransport": "false"' in policy["policy"]
    (lifecycle,) = res["aws_s3_bucket_lifecycle_configuration"].values()
    tiers = [(t["days"], t["storage_class"]) for t in lifecycle["rule"][0]["transition"]]
    assert tiers == [(30, "STANDARD_IA"), (90, "GLACIER"), (365, "DEEP_ARCHIVE")]
    (sse,) = res["aws_s3_bucket_server_side_encryption_configuration"].values()
    assert sse["rule"][0]["apply_server_side_encryption_by_default"]["sse_algorithm"] == "aws:kms"


def test_frames_expire_after_three_years_and_crops_after_two(synth):
    from modules import storage  # noqa: PLC0415

    (lifecycle,) = synth["odin-aws"]["resource"]["aws_s3_bucket_lifecycle_configuration"].values()
    expiry = {r["filter"][0].get("prefix"): r["expiration"][0]["days"] for r in lifecycle["rule"]
              if r.get("expiration")}
    assert expiry["runs/frames/"] == 3 * 365 and expiry["runs/crops/"] == 2 * 365 and expiry["tmp/"] == 14
    assert (storage.FRAMES_PREFIX, storage.CROPS_PREFIX) == ("runs/frames/", "runs/crops/")
    assert "runs/" not in expiry  # a run's results are kept (tiered), only its frames and crops expire


def test_spot_gpu_first_then_cpu_and_retries_a_lost_host_once(synth):
    res = synth["odin-aws"]["resource"]
    envs = {e["compute_environment_name"]: e for e in res["aws_batch_compute_environment"].values()}
    gpu = envs["odin-aws-gpu"]["compute_resources"]
    assert (gpu["type"], gpu["allocation_strategy"], gpu["min_vcpus"]) == ("SPOT", "SPOT_CAPACITY_OPTIMIZED", 0)
    assert "bid_percentage" not in gpu  # the aws profile sets no bid: Spot up to the On-Demand price
    for queue in res["aws_batch_job_queue"].values():
        assert [o["order"] for o in queue["compute_environment_order"]] == [0, 1]
    (job,) = res["aws_batch_job_definition"].values()
    # "retry once, then fail": two attempts, the second only when the host went away (spot reclaim)
    assert job["retry_strategy"]["attempts"] == 2
    rules = job["retry_strategy"]["evaluate_on_exit"]
    assert rules[0] == {"on_status_reason": "Host EC2*", "action": "RETRY"}
    assert {"on_exit_code": "2", "action": "EXIT"} in rules  # bad input is never retried
    assert rules[-1] == {"on_reason": "*", "action": "EXIT"}
    assert [r for r in rules if r["action"] == "RETRY"] == rules[:1]
    assert job["timeout"]["attempt_duration_seconds"] == 7200


def test_the_workflow_is_bounded_and_retries_only_batchs_api(synth):
    for name, stack in synth.items():
        asl = _definition(stack)
        assert asl["TimeoutSeconds"] == 7200, name  # the profile's workflow.timeout_s: the design's 2 hours
        task = asl["States"]["Stage1Detect"]
        assert task["TimeoutSecondsPath"] == "$.CostEstimation.stage1_timeout_s"
        retried = {e for r in task["Retry"] for e in r["ErrorEquals"]}
        assert "Batch.AWSBatchException" in retried
        assert not retried & {"States.ALL", "States.TaskFailed", "States.Timeout"}  # a job that ran is not redone
        assert all(r["MaxAttempts"] <= 2 for r in task["Retry"])


def test_cost_optimized_profile_bids_and_runs_on_gpus_only(synth_all):
    res = synth_all["odin-cost-optimized"]["resource"]
    (env,) = res["aws_batch_compute_environment"].values()  # gpu_required: no CPU environment
    assert env["compute_environment_name"] == "odin-cost-optimized-gpu"
    cr = env["compute_resources"]
    assert (cr["type"], cr["allocation_strategy"]) == ("SPOT", "SPOT_PRICE_CAPACITY_OPTIMIZED")
    assert cr["bid_percentage"] == 60
    assert (cr["min_vcpus"], cr["desired_vcpus"], cr["max_vcpus"]) == (0, 0, 16)
    assert env["lifecycle"]["ignore_changes"] == ["compute_resources[0].desired_vcpus"]
    asl = _definition(synth_all["odin-cost-optimized"])
    assert asl["States"]["Stage0ExifShards"]["MaxConcurrency"] == 10  # max_parallel_jobs
    assert _definition(synth_all["odin-aws"])["States"]["Stage0ExifShards"]["MaxConcurrency"] == 40


def test_compute_refuses_what_batch_does_not_allow(tmp_path):
    from cdktn import App  # noqa: PLC0415

    import main  # noqa: PLC0415

    for change, words in [({"allocation_strategy": "BEST_FIT"}, "Spot Fleet role"),
                          ({"spot": False, "spot_bid_percentage": 50}, "only with spot"),
                          ({"spot_bid_percentage": 150}, "1-100"),
                          ({"desired_vcpus": 100}, "outside min_vcpus..max_vcpus")]:
        (profile,) = main.load_profiles(["aws"])
        profile["compute"].update(change)
        with pytest.raises(ValueError, match=words):
            main.OdinStack(App(outdir=str(tmp_path)), profile)


def test_priority_picks_one_of_three_queues_over_the_same_environments(synth):
    res = synth["odin-aws"]["resource"]
    queues = {q["name"]: q for q in res["aws_batch_job_queue"].values()}
    assert {n: q["priority"] for n, q in queues.items()} == {
        "odin-aws-detect-high": 100, "odin-aws-detect": 50, "odin-aws-detect-low": 1}
    orders = {json.dumps(q["compute_environment_order"], sort_keys=True) for q in queues.values()}
    assert len(orders) == 1  # the same environments, in the same order
    states = _definition(synth["odin-aws"])["States"]
    assert states["CostEstimationUnwrap"]["Next"] == "Stage1DetectQueue"
    choice = states["Stage1DetectQueue"]
    picks = {c["And"][-1]["StringEquals"]: c["Next"] for c in choice["Choices"]}
    assert picks == {"high": "Stage1DetectQueueHigh", "low": "Stage1DetectQueueLow"}
    assert choice["Default"] == "Stage1DetectQueueNormal"  # no priority in the input (or an unknown one)
    for priority, state in {**picks, "normal": choice["Default"]}.items():
        assert states[state]["ResultPath"] == "$.Stage1DetectQueue" and states[state]["Next"] == "Stage1Detect"
        (address,) = [a for a, q in res["aws_batch_job_queue"].items()
                      if q["name"] == ("odin-aws-detect" if priority == "normal" else f"odin-aws-detect-{priority}")]
        assert states[state]["Result"] == f"${{aws_batch_job_queue.{address}.arn}}"
    assert states["Stage1Detect"]["Parameters"]["JobQueue.$"] == "$.Stage1DetectQueue"
    submit = [s for p in res["aws_iam_role_policy"].values() for s in json.loads(p["policy"])["Statement"]
              if s["Action"] == "batch:SubmitJob"]
    assert len(submit) == 1 and len(submit[0]["Resource"]) == 4  # the three queues and the job definition


@pytest.mark.parametrize("name", ["odin-aws", "odin-localstack", "odin-cost-optimized"])
def test_terraform_validate(synth, name):
    if shutil.which("terraform") is None:
        pytest.skip("terraform is not installed")
    init = terraform.terraform(name, "init", "-backend=false", "-input=false", "-no-color")
    assert init.returncode == 0, init.stdout[-2000:] + init.stderr[-2000:]
    check = terraform.terraform(name, "validate", "-no-color")
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-3000:]


def test_state_machine_follows_the_stage_graph(synth):
    asl = _definition(synth["odin-aws"])
    states = asl["States"]
    assert asl["StartAt"] == GRAPH[0].name
    walk, name = [], asl["StartAt"]
    while states[name]["Type"] not in ("Succeed", "Fail"):
        walk.append(name)
        name = states[name].get("Next") or states[name]["Default"]  # a Choice: the run without a priority
    assert [s.name for s in GRAPH] == [w for w in walk if w in {s.name for s in GRAPH}]
    for stage in GRAPH:
        task = states[stage.name]
        catches = {e for c in task["Catch"] for e in c["ErrorEquals"]}
        assert "States.ALL" in catches
        assert ("BudgetExceeded" in catches) == (stage.name in BUDGET_STAGES)
        if stage.runs_on == "batch":
            assert task["Resource"] == "arn:aws:states:::batch:submitJob.sync"
            assert task["Parameters"]["ArrayProperties"] == {"Size.$": "$.CostEstimation.array_size"}
        else:
            assert task["Resource"] == "arn:aws:states:::lambda:invoke"
            assert "Lambda.ServiceException" in task["Retry"][0]["ErrorEquals"]
    assert states["FailBudget"]["Type"] == "Fail" and states["FailBudget"]["Error"] == "BudgetExceeded"
    assert states["Result"]["Parameters"] == {"session_id.$": "$$.Execution.Name", "final_results.$": "$.WriteOutputs"}


def _tasks(states: dict) -> dict[str, dict]:
    """Every Task state of a definition, Distributed Map bodies included."""
    found = {}
    for name, st in states.items():
        if st["Type"] == "Task":
            found[name] = st
        if st["Type"] == "Map":
            found.update(_tasks(st["ItemProcessor"]["States"]))
    return found


def test_every_lambda_is_named_once_in_the_graph(tmp_path):
    """The state machine, the deployed functions and their handler folders all come from graph.LAMBDAS."""
    arns = {t.key: f"arn:aws:lambda:eu-north-1:1:function:{t.key}" for t in LAMBDAS}
    tasks = _tasks(asl.build(asl.Resources(arns, {"normal": "queue"}, "definition"))["States"])
    called = {t["Parameters"]["FunctionName"].rsplit(":", 1)[1] for t in tasks.values()
              if t["Resource"] == "arn:aws:states:::lambda:invoke"}
    assert called == set(arns)  # no Lambda deployed and never called, none called and never deployed
    expected = {FAILURE_REPORT}
    for stage in GRAPH:
        expected |= {stage.name} | ({stage.shard_task} if stage.fan_out else set()) \
            | ({stage.summary_task} if stage.runs_on == "batch" else set())
    assert set(tasks) == expected  # the names the emulator stand-in mocks
    assert {t.key: t.folder for t in LAMBDAS} == HANDLERS
    folders = {p.parent.name for p in (ROOT / "functions").glob("*/handler.py")}
    # and the one Lambda outside the state machine: the budget's monthly stop (modules/monthly_stop.py)
    assert folders == {t.folder for t in LAMBDAS} | {"monthly_stop"}
    for task in LAMBDAS:  # each handler runs its task's function
        assert importlib.import_module(f"functions.{task.folder}.handler").handler.task == task


def test_asl_validator_accepts_the_definition(synth, tmp_path):
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: asl-validator cannot run")
    prefix = ROOT / "build" / "node-asl"
    validator = prefix / "node_modules" / ".bin" / "asl-validator"
    if not validator.exists():
        done = subprocess.run([npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--silent",
                               ASL_VALIDATOR], capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            pytest.skip(f"could not install {ASL_VALIDATOR}: {done.stderr[-300:]}")
    for name, stack in synth.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(_definition(stack)))
        result = subprocess.run([str(validator), "--json-path", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"StartAt": "Nowhere", "States": {"A": {"Type": "Succeed"}}}))
    assert subprocess.run([str(validator), "--json-path", str(broken)], capture_output=True).returncode != 0


def test_aws_functions_run_one_image_each_with_its_own_handler(synth):
    """pyarrow + numpy alone unpack past Lambda's 250 MB zip limit: on AWS every function runs the image."""
    functions = synth["odin-aws"]["resource"]["aws_lambda_function"]
    assert len(functions) == len(HANDLERS) + 1  # + the monthly stop
    for fn in functions.values():
        assert fn["package_type"] == "Image" and fn["image_uri"].endswith(":0.1.0")
        (command,) = fn["image_config"]["command"]
        module, _, attr = command.rpartition(".")
        assert callable(getattr(importlib.import_module(module), attr))  # the handler the image will call
        assert "filename" not in fn and "runtime" not in fn
    (repo,) = [r for r in synth["odin-aws"]["resource"]["aws_ecr_repository"].values()
               if r["name"].endswith("/functions")]
    assert repo["image_scanning_configuration"]["scan_on_push"] and repo["image_tag_mutability"] == "IMMUTABLE"


CHECKOV = "checkov==3.3.30"


@pytest.fixture(scope="module")
def checkov():
    """checkov in its own virtual environment (its dependencies would fight the project's pins)."""
    found = shutil.which("checkov")
    if found:
        return found
    tool = ROOT / "build" / "tools" / "checkov"
    exe = tool / "bin" / "checkov"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(tool)], check=True)
        done = subprocess.run([str(tool / "bin" / "pip"), "install", "--quiet", CHECKOV], capture_output=True,
                              text=True, timeout=900)
        if done.returncode != 0:
            pytest.skip(f"could not install {CHECKOV}: {done.stderr[-300:]}")
    return str(exe)


def _checkov_failures(checkov, config: Path, stack_dir: Path) -> list[tuple[str, str]]:
    result = subprocess.run([checkov, "--config-file", str(config), "-d", str(stack_dir), "--quiet", "--compact",
                             "-o", "json"], capture_output=True, text=True, timeout=600)
    report = json.loads(result.stdout)
    report = report[0] if isinstance(report, list) else report
    assert report["summary"]["parsing_errors"] == 0
    return [(r["check_id"], r["resource"].rsplit(".", 1)[-1]) for r in report["results"]["failed_checks"]]


def test_checkov_failures_are_each_accepted_on_their_own_resource_with_a_reason(synth, checkov):
    """No global skip; each failure is accepted by name on the resource that fails it, and no acceptance is
    stale. A new resource failing an already-accepted check fails this test."""
    config = yaml.safe_load((ROOT / ".checkov.yaml").read_text())
    assert not {"skip-check", "skip_check", "soft-fail", "soft-fail-on", "skip-path"} & set(config)
    for name, stack in synth.items():
        accepted = {(check, res): reason for resources in stack["resource"].values()
                    for res, body in resources.items() for check, reason in suppressions(body).items()}
        assert all(len(reason) > 40 for reason in accepted.values())
        failures = _checkov_failures(checkov, ROOT / ".checkov.yaml", terraform.stack_dir(name))
        assert [f for f in failures if f not in accepted] == [], name
        assert set(accepted) <= set(failures), f"stale acceptances in {name}: {set(accepted) - set(failures)}"


def test_an_unaccepted_failure_is_reported(synth, checkov, tmp_path):
    """The gate above sees a failure on a new resource even where the same check is accepted elsewhere."""
    stack = json.loads(json.dumps(synth["odin-aws"]))
    (name, bucket), *_ = stack["resource"]["aws_s3_bucket"].items()
    stack["resource"]["aws_s3_bucket"]["another"] = {k: v for k, v in bucket.items() if k != "//"}
    (tmp_path / "cdk.tf.json").write_text(json.dumps(stack))
    failures = _checkov_failures(checkov, ROOT / ".checkov.yaml", tmp_path)
    assert ("CKV_AWS_18", "another") in failures and ("CKV_AWS_18", name) in failures
    assert not suppressions(stack["resource"]["aws_s3_bucket"]["another"])
