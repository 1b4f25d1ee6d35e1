# Base images, pinned by digest (a tag such as 3.11 moves; a digest names exactly one image). The Dockerfiles
# take them as build arguments; `make build-docker` passes these. `make base-image-digests` looks each tag up
# again (docker buildx imagetools) and rewrites this file: run it, build, test, commit, to take a base update.
#
# python:3.11.10-slim-bookworm: the digest below comes from public material (several projects pin the same
# one); it was not looked up from this machine, which cannot reach the registry. A wrong digest fails the pull,
# it cannot substitute another image. The Lambda base's digest is not known here: `make build-docker` refuses
# to build the functions image until `make base-image-digests` has filled it in.
PYTHON_TAG = python:3.11.10-slim-bookworm
PYTHON_DIGEST = sha256:840e180ebcc6e5c8efab209c43f5e40fd2af98cb49db5c7103c90539c56bb30e
LAMBDA_TAG = public.ecr.aws/lambda/python:3.11
LAMBDA_DIGEST =
