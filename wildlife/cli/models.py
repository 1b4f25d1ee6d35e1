"""``odin models``: the detection and classification models: fetch, list the cache, export, quantize."""

from __future__ import annotations

import click

from wildlife.cli.common import EXIT_FAILED, EXIT_USAGE, fail
from wildlife.errors import InputError, OdinError
from wildlife.progress import console


@click.group()
def models() -> None:
    """Detection models: fetch MegaDetector, list the cache, export to ONNX, quantize to int8 or bf16."""


def _known_keys() -> list[str]:
    from wildlife.detect.catalog import KNOWN  # noqa: PLC0415 - free of torch

    return [*KNOWN, "speciesnet"]


@models.command("fetch")
@click.argument("key", type=click.Choice(_known_keys()))
@click.option("--sha256", default=None, help="Check the download against this SHA-256, not the pinned MD5 "
              "(required for a model with none pinned: MDv6).")
@click.option("--url", default=None, help="Download from this address (file:// too) instead of the official "
              "release (required for MDv6, published as PyTorch checkpoints only: give your ONNX export).")
def models_fetch(key, sha256, url):
    """Download a known detection model, verify its hash, cache it (a YOLOv5 checkpoint is also converted to
    ONNX; an ONNX model gets its sidecar). `scripts/run.py models list --known` lists them. `speciesnet`:
    SpeciesNet's release, held to the SHA-256 of the first download (Kaggle publishes none), converted to ONNX."""
    if key == "speciesnet":
        _fetch_speciesnet(sha256, url)
        return
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn  # noqa: PLC0415

    from wildlife.detect import catalog  # noqa: PLC0415

    if catalog.KNOWN[key]["format"] == "onnx":
        get = catalog.download
    else:
        from wildlife.detect.weights import fetch as get  # noqa: PLC0415 - needs torch
    try:
        with Progress(*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn(), console=console,
                      disable=not console.is_terminal) as bar:
            task = bar.add_task(f"downloading {catalog.KNOWN[key]['file']}", total=None)
            path = get(key, sha256=sha256, url=url,
                       progress=lambda n, total: bar.update(task, advance=n, total=total or None))
    except ValueError as exc:
        fail(EXIT_USAGE, str(exc))
    except OSError as exc:
        fail(EXIT_FAILED, f"download failed ({exc}). This needs internet; on an offline machine copy the weights "
                           "file over and use --detector /path/to/it.pt")
    onnx = path if path.suffix == ".onnx" else path.parent / f"{key}.onnx"
    console.print(f"[green]cached[/green] {path} and {onnx.with_suffix('.json')}; use --detector {key}")


def _fetch_speciesnet(sha256, url):
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn  # noqa: PLC0415

    from wildlife.classify import speciesnet  # noqa: PLC0415

    try:
        with Progress(*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn(), console=console,
                      disable=not console.is_terminal) as bar:
            task = bar.add_task(f"downloading SpeciesNet v{speciesnet.RELEASE['version']}", total=None)
            path = speciesnet.fetch(sha256=sha256, url=url,
                                    progress=lambda n, total: bar.update(task, advance=n, total=total or None))
    except ValueError as exc:
        fail(EXIT_USAGE, str(exc))
    except OSError as exc:
        fail(EXIT_FAILED, f"download failed ({exc}). This needs internet; on an offline machine copy the release "
                          f"archive over and use --url file:///path/to/{speciesnet.RELEASE['file']}")
    console.print(f"[green]cached[/green] {path} with {speciesnet.SIDECAR_FILE}, {speciesnet.LABELS_FILE}, "
                  f"{speciesnet.GEOFENCE_FILE}; use --classifier speciesnet")


@models.command("list")
@click.option("--known", is_flag=True, help="The models Odin knows, with architecture, size, licence, accuracy.")
def models_list(known):
    """What is in the model cache (or, with --known, every model `models fetch` knows)."""
    from wildlife.detect import catalog  # noqa: PLC0415

    if known:
        for key, info in catalog.KNOWN.items():
            value, metric = info["accuracy"]
            console.print(f"  {key:<20} {info['architecture']:<30} {info['input_size']:>5} px  {info['licence']:<32}"
                          f" accuracy {value:.3f} x MDv5a ({metric})", soft_wrap=True)
        return
    from wildlife.detect import weights  # noqa: PLC0415

    folder = weights.cache_dir()
    files = sorted(folder.glob("*")) if folder.exists() else []
    console.print(f"model cache: {folder}")
    for f in files:
        console.print(f"  {f.name:<24} {f.stat().st_size / 1e6:8.1f} MB")
    if not files:
        console.print("  (empty: `scripts/run.py models fetch md-v5a` and `models fetch speciesnet` on a machine "
                      "with internet)")


@models.command("export")
@click.argument("weights_path", type=click.Path(exists=True, dir_okay=False))
@click.option("--output", required=True, type=click.Path(dir_okay=False), help="The .onnx file to write.")
@click.option("--imgsz", default=1280, show_default=True)
def models_export(weights_path, output, imgsz):
    """Export a YOLOv5/MegaDetector .pt checkpoint to ONNX with its sidecar JSON."""
    from pathlib import Path  # noqa: PLC0415

    from wildlife.detect import weights  # noqa: PLC0415

    try:
        model = weights.load_yolov5(weights_path)
    except OdinError:
        raise
    except Exception as exc:  # whatever a file that is not a checkpoint makes the reader raise
        raise InputError(f"{weights_path}: not a YOLOv5/MegaDetector checkpoint ({type(exc).__name__}: {exc})",
                         hint="Give the .pt file of a YOLOv5 or MegaDetector v5 model.") from exc
    try:
        out = weights.export_onnx(model, Path(output), imgsz)
    except ValueError as exc:
        fail(EXIT_USAGE, f"{weights_path}: {exc}")
    console.print(f"[green]wrote[/green] {out} and {out.with_suffix('.json')}")


@models.command("quantize")
@click.argument("model_path", type=click.Path(exists=True, dir_okay=False))
@click.option("--photos", required=True, type=click.Path(exists=True, file_okay=False),
              help="A folder of your own photos: some calibrate, the others check agreement.")
@click.option("--calibration", default=8, show_default=True, help="Photos used to calibrate.")
@click.option("--check", default=8, show_default=True, help="Held-out photos: int8 or bf16 against fp32.")
@click.option("--output", default=None, type=click.Path(dir_okay=False), help="Default: MODEL.PRECISION.onnx")
@click.option("--precision", type=click.Choice(["int8", "bf16"]), default="int8", show_default=True,
              help="int8: calibrated on your photos, runs anywhere; bf16: no calibration, needs a CPU with bf16 "
                   "instructions (AVX512-BF16 or AMX) and OpenVINO.")
def models_quantize(model_path, photos, calibration, check, output, precision):
    """A fast mode of an ONNX detector (int8 or bf16), with its measured agreement with fp32 in the sidecar."""
    from pathlib import Path  # noqa: PLC0415

    import onnx  # noqa: PLC0415

    from wildlife.detect import quantize  # noqa: PLC0415

    try:
        onnx.load(model_path, load_external_data=False)
    except Exception as exc:  # whatever a file that is not an ONNX model makes the reader raise
        raise InputError(f"{model_path}: not an ONNX model ({type(exc).__name__}: {exc})",
                         hint="Give the .onnx file that `models fetch` or `models export` wrote.") from exc
    found = sorted(str(p) for p in Path(photos).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    if precision == "bf16":
        calibration = 0  # nothing to calibrate: every chosen photo checks agreement
    want = calibration + check
    step = max(len(found) / want, 1.0)
    chosen = [found[int(i * step)] for i in range(min(want, len(found)))]  # spread over the whole card
    source = Path(model_path)
    out = Path(output) if output else source.with_suffix(f".{precision}.onnx")
    try:
        report = quantize.quantize(source, chosen, out, calibration, progress=lambda m: console.print(f"  {m}"),
                                   precision=precision)
    except ValueError as exc:
        fail(EXIT_USAGE, str(exc))
    colour = "green" if report["share"] >= quantize.TARGET else "yellow"
    console.print(f"[{colour}]{precision} agreement[/{colour}] {report['matched']}/{report['boxes']} fp32 boxes "
                  f"(conf >= {report['min_conf']}) reproduced at IoU >= {report['iou']} "
                  f"({report['share']:.1%}; target {quantize.TARGET:.0%}) on {report['photos']} held-out photos; "
                  f"at the typical threshold {report['typical']['matched']}/{report['typical']['boxes']}")
    console.print(f"[green]wrote[/green] {out} and {out.with_suffix('.json')}; use --detector {out}")
