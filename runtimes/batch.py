"""The detector container's entry point: Stage 1 over one shard of an AWS Batch array job.

    python -m runtimes.batch --input s3://bucket/run/_run/media.parquet --output s3://bucket/run/_run/stage1 \\
        [--detector megadetector] [--classifier auto] [--sequence-gap 60] [--checkpoint-every 500]

The shard is ``AWS_BATCH_JOB_ARRAY_INDEX`` of ``AWS_BATCH_JOB_ARRAY_SIZE`` (0 of 1 outside an array job).
This is ``wildlife.stage1.run_shard``, the same function the local runner runs as shard 0 of 1: results go to
``<output>/shard-<index>.parquet`` with the detector's load warnings in ``shard-<index>.json``, checkpointed
under ``<output>/shard-<index>/``, so a spot instance reclaimed mid-shard resumes where it stopped when Batch
retries the job.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from wildlife import detect, stage1
from wildlife.checkpoint import DEFAULT_EVERY
from wildlife.runinput import RunInput


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtimes.batch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, help="media table from Stage 0 (Parquet URI)")
    parser.add_argument("--output", required=True, help="folder URI for this job's shard results")
    parser.add_argument("--detector", default=os.environ.get("ODIN_DETECTOR", "megadetector"))
    parser.add_argument("--classifier", default=os.environ.get("ODIN_CLASSIFIER", RunInput.default("classifier")))
    parser.add_argument("--sequence-gap", type=float, default=60.0)
    parser.add_argument("--checkpoint-every", type=int, default=DEFAULT_EVERY)
    args = parser.parse_args(argv)
    index = int(os.environ.get("AWS_BATCH_JOB_ARRAY_INDEX", "0"))
    size = int(os.environ.get("AWS_BATCH_JOB_ARRAY_SIZE", "1"))
    try:
        summary = stage1.run_shard(args.input, args.output, args.detector, args.sequence_gap, index, size,
                                   args.checkpoint_every, classifier_spec=args.classifier)
    except detect.DetectorUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2  # a bad job definition: Batch's retry strategy does not retry exit 2
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
