"""The ``--speed`` presets: accurate, balanced, fast. Each names one model of the catalogue
(``wildlife.detect.catalog.KNOWN``), which says its architecture, input size, licence and published accuracy;
this table is read by the CLI, the estimate, ``cost optimize`` and the README.

A preset overrides ``--detector``. Its model must be in the cache like any other (``models fetch KEY``);
when it is not, the run stops before any work with the same message as a missing MegaDetector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wildlife.detect.catalog import KNOWN


@dataclass(frozen=True)
class Preset:
    name: str
    model: str  # a key of catalog.KNOWN
    why: str


PRESETS = {p.name: p for p in (
    Preset("accurate", "md-v5a", "MegaDetector v5a, the reference the field's thresholds and studies use"),
    # RT-DETR at 640: animal recall within 1% of MDv5a's [PW], Apache-2.0, about a quarter of its compute
    Preset("balanced", "mdv6-apa-rtdetr-c", "MDv6 RT-DETR compact (Apache-2.0): near MDv5a's animal recall"),
    # YOLOv5s at 640: MegaDetector's own small model, 12.7x MDv5a's speed for 14% less animal AP [MD]
    Preset("fast", "mdv1000-spruce", "MDv1000-spruce, a small model at 640 px for a laptop CPU"),
)}
NAMES = tuple(PRESETS)


def detector_of(params: dict[str, Any]) -> str:
    """The detector a run uses: its ``--speed`` preset's model when it names one, else its ``--detector``."""
    speed = params.get("speed")
    return PRESETS[speed].model if speed else params["detector"]


def describe(name: str) -> str:
    """One line for a user: the preset, its model, size, licence and published accuracy relative to MDv5a."""
    preset = PRESETS[name]
    info = KNOWN[preset.model]
    value, metric = info["accuracy"]
    return (f"{name}: {preset.model} ({info['architecture']}, {info['input_size']} px, {info['licence']}), "
            f"accuracy {value:.3f} x MDv5a ({metric})")


def estimates(chosen, prices: dict[str, Any]) -> list[tuple[Preset, Any]]:
    """Each preset's estimate for the input of ``chosen`` (a ``budget.Estimate``): the same target, spot
    choice and instance type, priced by ``budget.estimate``. A preset whose model family is the one ``chosen``
    ran (a local run calibrated on this machine) keeps ``chosen``'s rates; the others use the price table's."""
    from wildlife import budget  # noqa: PLC0415

    out = []
    for preset in PRESETS.values():
        est = budget.estimate(chosen.photos, chosen.total_bytes, target=chosen.target, detector=preset.model,
                              use_spot=chosen.use_spot, instance_type=chosen.instance_type, prices=prices,
                              classifier=chosen.classifier, expected_empty_share=chosen.expected_empty_share)
        out.append((preset, chosen if est.detector == chosen.detector else est))
    return out
