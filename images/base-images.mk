# The base image of all three images, pinned by digest (a tag such as 3.11 moves; a digest names exactly one
# image). The Dockerfiles take it as the PYTHON_IMAGE build argument; `make build-docker` passes it.
# `make base-image-digests` looks the tag up again (docker buildx imagetools) and rewrites the digest here: run
# it, build, test, commit, to take a base update.
#
# The digest below comes from public material (several projects pin the same one for this tag); it was not
# looked up from the machine this was written on, which cannot reach the registry. A wrong digest fails the
# pull; it cannot substitute another image.
PYTHON_TAG = python:3.11.10-slim-bookworm
PYTHON_DIGEST = sha256:840e180ebcc6e5c8efab209c43f5e40fd2af98cb49db5c7103c90539c56bb30e
