"""Write data/sample's generated video: a few seconds of a synthetic camera-trap clip, H.264 in MP4.

    python scripts/make_sample_video.py [--output data/sample/videos/62c200a9/SYFW0001.MP4]

A fixed, noisy "stream bank" scene (the camera does not move) crossed by a dark, animal-sized blob, with a
camera-style info bar; the container's ``creation_time`` is the camera's clock reading, as trail cameras write
it. Deterministic (seeded noise), about 100 KB. It is generated, not recorded: it shows how Odin treats a
video (Stage 0's metadata, sampled frames, MegaDetector's video convention), not what a detector finds in
real footage.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import av
import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "data" / "sample" / "videos" / "62c200a9" / "SYFW0001.MP4"
WHEN = "2021-04-12T06:15:00.000000Z"  # inside deployment 62c200a9 (2021-03-27 .. 2021-04-18), camera clock
SIZE, FPS, SECONDS = (640, 360), 30, 4


def scene(rng: np.random.Generator) -> np.ndarray:
    w, h = SIZE
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = (70, 95, 80)
    img[h // 2:] = (95, 105, 90)  # bank and water
    for _ in range(40):  # reeds
        x = int(rng.integers(0, w))
        cv2.line(img, (x, h // 2), (x + int(rng.integers(-8, 8)), h // 2 - int(rng.integers(20, 80))), (50, 120, 60), 2)
    return img


def frames(n: int):
    rng = np.random.default_rng(7)
    background = scene(rng)
    w, h = SIZE
    for i in range(n):
        img = background.copy()
        t = i / n
        if 0.15 < t < 0.9:  # the animal walks across, left to right
            x = int((t - 0.15) / 0.75 * (w + 120)) - 120
            cv2.ellipse(img, (x + 60, 240), (60, 30), 0, 0, 360, (35, 40, 45), -1)
            cv2.circle(img, (x + 125, 215), 18, (35, 40, 45), -1)
            for leg in (20, 45, 80, 100):
                cv2.line(img, (x + leg, 260), (x + leg + (i % 6) - 3, 300), (30, 35, 40), 5)
        noise = rng.normal(0, 3, img.shape)
        img = np.clip(img + noise, 0, 255).astype(np.uint8)
        img[h - 18:] = 0
        cv2.putText(img, f"SYNTHETIC 2021-04-12 06:15:{i // FPS:02d} 8C", (8, h - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (255, 255, 255), 1)
        yield img


def write(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4") as container:
        container.metadata["creation_time"] = WHEN
        stream = container.add_stream("libx264", rate=FPS, options={"crf": "30", "preset": "medium"})
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        stream.codec_context.gop_size = FPS  # one keyframe a second, as trail cameras typically encode
        for img in frames(FPS * SECONDS):
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    write(args.output)
    print(f"{args.output}: {args.output.stat().st_size} bytes")


if __name__ == "__main__":
    main()
