# Odin. `make run` and `make test` are all a fresh machine needs (Python 3.11 and network access to PyPI).
# `make run` installs Odin as a user does (what `pip install .` needs, no test, lint or cloud tools, from
# requirements/run.lock by hash) into $(RUN_VENV);
# everything else uses the development environment in $(VENV) (requirements/dev.lock, then `pip install -e .`).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RUN_VENV ?= .venv-run
SAMPLE_OUT ?= out/sample

.PHONY: lock base-image-digests
.PHONY: help venv run test lint bench clean synth validate plan-aws deploy-aws deploy-aws-repos destroy-aws run-aws build-docker \
	up-localstack down-localstack deploy-local run-local status-local logs-local destroy-local

help:
	@echo "make run    - install Odin into $(RUN_VENV) as a user does and run it on the bundled sample photos"
	@echo "make test   - the whole test suite"
	@echo "make lint   - ruff"
	@echo "make bench  - benchmarks (prints tables; see bench/)"

# Every package from requirements/dev.lock, each checked against its hash; then PyTorch by version (its build
# differs per platform: the CPU wheel on CI and laptops without a GPU, so dev.lock leaves torch and its CUDA
# wheels out rather than pin PyPI's multi-GB CUDA build); then the project itself, with the build backend from
# the same lock (no build isolation: nothing unlisted is fetched). `make lock` refreshes the lock files.
LOCK ?= requirements/dev.lock
TORCH ?= torch==2.13.0
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps '$(TORCH)'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

# The lock files (hashes for every wheel and sdist of each pinned version), from pyproject.toml by uv
# (pip install uv, or https://docs.astral.sh/uv/). run: `make run` (a user's install); functions: the functions image (with the Lambda runtime
# interface client); infra: CI's synth job; dev: make (without torch's platform-specific build, see above);
# detector / onnx: the detector images (detector: the GPU image, CUDA torch on purpose).
UV ?= uv
LOCK_FLAGS = --generate-hashes --python-version 3.11 --index-url https://pypi.org/simple --custom-compile-command "make lock"
NOT_IN_DEV_LOCK = torch triton cuda-bindings cuda-pathfinder cuda-toolkit nvidia-cublas nvidia-cuda-cupti \
	nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver \
	nvidia-cusparse nvidia-cusparselt-cu13 nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx
lock:
	$(UV) pip compile pyproject.toml requirements/build.in $(LOCK_FLAGS) \
		--python-platform x86_64-manylinux_2_28 -o requirements/run.lock
	$(UV) pip compile pyproject.toml requirements/build.in requirements/functions.in $(LOCK_FLAGS) \
		--python-platform x86_64-manylinux_2_28 -o requirements/functions.lock
	for extra in infra detector onnx; do \
		$(UV) pip compile pyproject.toml requirements/build.in --extra $$extra $(LOCK_FLAGS) \
			--python-platform x86_64-manylinux_2_28 -o requirements/$$extra.lock || exit 1; done
	$(UV) pip compile pyproject.toml requirements/build.in --extra dev $(LOCK_FLAGS) \
		--python-platform x86_64-manylinux_2_28 $(addprefix --no-emit-package ,$(NOT_IN_DEV_LOCK)) \
		-o requirements/dev.lock

venv: $(STAMP)

# pip reinstalls a local folder every time (a few seconds), so the run always has this checkout's code;
# setuptools' build/lib is removed first so that a deleted module is not installed from it again
run:
	test -x $(RUN_VENV)/bin/python || $(PYTHON) -m venv $(RUN_VENV)
	rm -rf build/lib
	$(RUN_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps \
		-r requirements/run.lock
	$(RUN_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation .
	rm -rf $(SAMPLE_OUT)
	$(RUN_VENV)/bin/odin run --input data/sample/photos --deployments data/sample/deployments.csv \
		--output $(SAMPLE_OUT) --budget 25

# Four workers, one file each at a time: the two emulator tests (listed first, so they start first) mostly
# wait on Terraform and the emulators, and the images' environments (made once, kept in the temp folder) on
# pip, while the other workers run everything else.
test: $(STAMP)
	$(BIN)/python -m pytest -n 4 --dist loadfile tests/test_localstack.py tests/test_moto_stack.py \
		tests/test_images.py tests

lint: $(STAMP)
	$(BIN)/ruff check wildlife runtimes scripts tests bench modules functions main.py
	$(BIN)/hadolint images/detector/Dockerfile images/detector-cpu/Dockerfile images/functions/Dockerfile

bench: $(STAMP)
	$(BIN)/python bench/stage0.py
	$(BIN)/python bench/events.py
	$(BIN)/python bench/answers.py

# --- AWS (see README "AWS"): CDK Terrain synthesises Terraform JSON, Terraform applies it --------------
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION = 20
TF_RC := $(if $(wildcard /opt/tf-plugins/registry.terraform.io),TF_CLI_CONFIG_FILE=$(CURDIR)/terraformrc,)
AWS_STACK := cdktf.out/stacks/odin-aws

synth: $(STAMP)
	$(BIN)/python main.py

validate: synth
	cd $(AWS_STACK) && $(TF_RC) terraform init -backend=false -input=false && $(TF_RC) terraform validate

plan-aws: synth
	cd $(AWS_STACK) && $(TF_RC) terraform init -input=false && $(TF_RC) terraform plan -input=false -out=odin.plan

deploy-aws: plan-aws
	cd $(AWS_STACK) && $(TF_RC) terraform apply -input=false odin.plan

# the first deploy: ECR repositories before anything else, so the images can be pushed before the functions
deploy-aws-repos: synth
	cd $(AWS_STACK) && $(TF_RC) terraform init -input=false && $(TF_RC) terraform apply -input=false \
		$$($(CURDIR)/$(BIN)/python -c "import json; r = json.load(open('cdk.tf.json'))['resource']; \
		print(' '.join('-target=aws_ecr_repository.' + k for k in r['aws_ecr_repository']))")

destroy-aws: synth
	cd $(AWS_STACK) && $(TF_RC) terraform init -input=false && $(TF_RC) terraform destroy -input=false

run-aws: $(STAMP)
	$(BIN)/python scripts/run.py run --target aws --input data/sample/photos --output out/sample-aws --budget 25

# --- the emulator (see README "On an emulator"): LocalStack on 127.0.0.1:4566, in Docker or on the host --------
up-localstack: $(STAMP)
	$(BIN)/python scripts/localstack.py up

down-localstack: $(STAMP)
	$(BIN)/python scripts/localstack.py down

deploy-local: $(STAMP)
	$(BIN)/python scripts/run.py apply --target localstack

run-local: $(STAMP)
	rm -rf out/sample-local
	$(BIN)/python scripts/run.py run --target localstack --input data/sample/photos \
		--deployments data/sample/deployments.csv --output out/sample-local --budget 25

status-local: $(STAMP)
	$(BIN)/python scripts/run.py status --target localstack

logs-local: $(STAMP)
	$(BIN)/python scripts/run.py logs --target localstack

destroy-local: $(STAMP)
	$(BIN)/python scripts/run.py destroy --target localstack

include images/base-images.mk
build-docker:
	docker build -f images/detector/Dockerfile --build-arg PYTHON_IMAGE="$(PYTHON_TAG)@$(PYTHON_DIGEST)" \
		--build-arg MODEL_SHA256="$(MODEL_SHA256)" -t odin-detector .
	docker build -f images/detector-cpu/Dockerfile --build-arg PYTHON_IMAGE="$(PYTHON_TAG)@$(PYTHON_DIGEST)" \
		--build-arg MODEL_SHA256="$(MODEL_SHA256)" -t odin-detector-cpu .
	docker build -f images/functions/Dockerfile --build-arg PYTHON_IMAGE="$(PYTHON_TAG)@$(PYTHON_DIGEST)" \
		-t odin-functions .

# a base image update: look each tag's current digest up (multi-arch index) and write it to images/base-images.mk
base-image-digests:
	for name in PYTHON; do \
		tag=$$(sed -n "s/^$${name}_TAG = //p" images/base-images.mk); \
		digest=$$(docker buildx imagetools inspect "$$tag" --format '{{json .Manifest.Digest}}' | tr -d '"'); \
		case "$$digest" in sha256:*) ;; *) echo "no digest for $$tag" >&2; exit 1;; esac; \
		sed -i "s/^$${name}_DIGEST =.*/$${name}_DIGEST = $$digest/" images/base-images.mk; done

clean:
	rm -rf $(VENV) $(RUN_VENV) out .pytest_cache .ruff_cache cdktf.out build
