"""From a box's classifier scores to one label: SpeciesNet's ensemble, adapted to a detection.

SpeciesNet (google/cameratrapai, ``speciesnet/ensemble_prediction_combiner.py``,
``combine_predictions_for_single_item``; ``speciesnet/geofence_utils.py``) decides once per photo from the
classifier's top-5 on the photo's most confident box and the detector's top detection. Odin classifies every
animal box, so ``decide`` runs the same chain once per box, with that box's category and confidence as
"the detector's top detection":

1. person box: conf > 0.7 -> human (detector); conf > 0.2 and the classifier's top is human or vehicle with
   score > 0.5 -> human (classifier).
2. vehicle box: conf > 0.2 and top human > 0.5 -> human (classifier); conf > 0.7 -> vehicle (detector);
   conf > 0.2 and top vehicle > 0.4 -> vehicle (classifier).
3. blank: conf < 0.2 and top blank > 0.5, or top blank > 0.99 -> blank (classifier).
4. an animal top label: score > 0.8, or score > 0.65 on an animal box with conf > 0.2 -> that label, unless
   the geofence takes it away in the deployment's country/region: then the first of family, order, class,
   kingdom whose summed score reaches the top score and that the geofence allows
   (``classifier+geofence+rollup_to_<rank>``).
5. otherwise the first of genus, family, order, class, kingdom whose summed score (over the top-5 labels
   under that taxon, geofenced taxa skipped) is > 0.65 (``classifier+rollup_to_<rank>``).
6. otherwise the detector's category, with its confidence (``detector``).

Where Odin differs, and why (also in the README):

* Step 6 always answers with the detector's category ("animal" for an animal box). SpeciesNet answers
  "animal" only above detector confidence 0.5 and "unknown" below; a box that Odin keeps is the detector's
  claim, its confidence is in ``conf``, and the positive threshold applies downstream. Never a species.
* A taxon the label list lacks is still reached by rollup: its label is made from the labels' own taxonomy
  (empty uuid and common name). SpeciesNet's list holds every higher taxon; a user's ONNX model with
  species-only labels would otherwise never roll up. Human's ancestors are not made (SpeciesNet's human is
  reconciled with the person box, not rolled into primates).
* A box with no classifier scores (not classified, or an old run) gets no decision: the columns stay null.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from wildlife.classify import RANKS, Label
from wildlife.classify.geofence import blocked, key

# SpeciesNet's special labels (speciesnet/constants.py, class Classification)
BLANK = Label.parse("f1856211-cfb7-4a5b-9158-c0f72fd09ee6;;;;;;blank")
ANIMAL = Label.parse("1f689929-883d-4dae-958c-3d57ab5b6c16;;;;;;animal")
HUMAN = Label.parse("990ae9dd-7a59-4344-afcb-1b7b21368000;mammalia;primates;hominidae;homo;sapiens;human")
VEHICLE = Label.parse("e2895ed5-780b-48f6-8a11-9e27cb594511;;;;;;vehicle")


def same(a: Label, b: Label) -> bool:
    """One of the special labels, whatever uuid a classifier gave it: the same taxonomy and, for those
    outside the taxonomy (blank, vehicle, animal), the same name."""
    return key(a) == key(b) and (bool(b.taxonomy) or a.common_name.lower() == b.common_name.lower())


# Thresholds: ensemble_prediction_combiner.py, combine_predictions_for_single_item (line numbers of
# google/cameratrapai at 6520b83)
HUMAN_BOX_SURE = 0.7  # line 83: a person box this confident is human whatever the classifier says
VEHICLE_BOX_SURE = 0.7  # line 107
BOX_MID = 0.2  # lines 89, 100, 113, 157: a box this confident lets the classifier's human/vehicle/animal through
HUMAN_CLASS = 0.5  # lines 92, 102: classifier's human (or vehicle, on a person box)
VEHICLE_CLASS = 0.4  # line 115
BLANK_BOX_BELOW = 0.2  # line 122: blank only on a box the detector barely saw ...
BLANK_CLASS = 0.5  # line 124: ... and a classifier fairly sure
BLANK_CLASS_SURE = 0.99  # line 131: a classifier this sure of blank wins over any box
ANIMAL_CLASS_SURE = 0.8  # line 141: the top animal label stands (after the geofence)
ANIMAL_CLASS = 0.65  # line 155: ... or this, on an animal box above BOX_MID
ROLLUP = 0.65  # line 176: summed score a genus/family/order/class/kingdom needs
ROLLUP_RANKS = ("genus", "family", "order", "class", "kingdom")  # line 175
GEOFENCE_RANKS = ("family", "order", "class", "kingdom")  # geofence_utils.py line 253: genus is skipped
GEOFENCE_MARGIN = 1e-10  # geofence_utils.py line 255: the rollup must reach the top score


_parse = lru_cache(maxsize=65536)(Label.parse)  # a run's boxes share a few hundred label lines


@dataclass(frozen=True)
class Decision:
    label: Label
    score: float
    source: str  # "detector", "classifier", "classifier+rollup_to_genus", "classifier+geofence+rollup_to_family"


@dataclass
class Rules:
    """What ``decide`` needs beyond the scores: the taxa (key -> label) and the geofence."""

    taxa: dict[str, Label] = field(default_factory=dict)
    geofence: dict | None = None

    @classmethod
    def from_labels(cls, lines: Iterable[str], geofence: dict | None = None) -> Rules:
        """From a classifier's label list (``classifier.json``'s ``labels``) and its geofence. As SpeciesNet's
        ``load_taxonomy``: blank and vehicle are no taxon, human and animal (the kingdom) always are."""
        taxa: dict[str, Label] = {}
        for line in lines:
            if line.strip():
                label = Label.parse(line)
                taxa.setdefault(key(label), label)
        for special in (BLANK, VEHICLE):  # outside the taxonomy: no rollup reaches them
            taxa.pop(key(special), None)
        taxa[key(HUMAN)] = HUMAN
        taxa[key(ANIMAL)] = ANIMAL
        return cls(taxa, geofence)


def ancestor(label: Label, rank: str, rules: Rules) -> Label | None:
    """The taxon of ``label`` at ``rank`` (``genus``... ``kingdom``): the classifier's own label for it, else
    one made from ``label``'s fields; None where ``label`` has no such rank (blank, vehicle, a genus asked
    for its species)."""
    levels = label.taxonomy
    if rank == "kingdom":
        return rules.taxa[key(ANIMAL)] if levels or same(label, ANIMAL) else None
    depth = RANKS.index(rank) + 1
    if len(levels) < depth:
        return None
    fields = (*levels[:depth], *[""] * (5 - depth))
    found = rules.taxa.get(";".join(fields))
    if found is None and not same(label, HUMAN):
        found = Label("", *fields, "")
    return found


def _rollup(top: Sequence[tuple[Label, float]], ranks: Sequence[str], threshold: float, country: str | None,
            region: str | None, rules: Rules, prefix: str) -> Decision | None:
    """The first rank whose best allowed summed score passes ``threshold`` (geofence_utils.py lines 176-202)."""
    for rank in ranks:
        sums: dict[Label, float] = {}
        for label, score in top:
            up = ancestor(label, rank, rules)
            if up is not None:
                sums[up] = sums.get(up, 0.0) + score
        best, best_score = None, 0.0
        for taxon, total in sums.items():
            if total > best_score and not blocked(taxon, country, region, rules.geofence):
                best, best_score = taxon, total
        if best is not None and best_score > threshold:
            return Decision(best, best_score, f"{prefix}rollup_to_{rank}")
    return None


def _geofenced(top: Sequence[tuple[Label, float]], country: str | None, region: str | None,
               rules: Rules) -> Decision | None:
    """The top label if the geofence allows it, else its nearest allowed ancestor (geofence_utils.py 245-278)."""
    label, score = top[0]
    if not blocked(label, country, region, rules.geofence):
        return Decision(label, score, "classifier")
    return _rollup(top, GEOFENCE_RANKS, score - GEOFENCE_MARGIN, country, region, rules, "classifier+geofence+")


def decide(top: Sequence[tuple[str | Label, float]] | None, category: str, conf: float, country: str | None,
           region: str | None, rules: Rules) -> Decision | None:
    """One box's label from its classifier top-k (best first), its detector category and confidence, and the
    deployment's country (ISO 3166-1 alpha-3) and region (ISO 3166-2). None: the box was not classified."""
    if not top:
        return None
    ranked = [(lab if isinstance(lab, Label) else _parse(lab), float(s)) for lab, s in top]
    first, score = ranked[0]
    if category == "person":
        if conf > HUMAN_BOX_SURE:
            return Decision(HUMAN, conf, "detector")
        if conf > BOX_MID and (same(first, HUMAN) or same(first, VEHICLE)) and score > HUMAN_CLASS:
            return Decision(first if same(first, HUMAN) else HUMAN, score, "classifier")
    if category == "vehicle":
        if conf > BOX_MID and same(first, HUMAN) and score > HUMAN_CLASS:
            return Decision(first, score, "classifier")
        if conf > VEHICLE_BOX_SURE:
            return Decision(VEHICLE, conf, "detector")
        if conf > BOX_MID and same(first, VEHICLE) and score > VEHICLE_CLASS:
            return Decision(first, score, "classifier")
    if same(first, BLANK) and ((conf < BLANK_BOX_BELOW and score > BLANK_CLASS) or score > BLANK_CLASS_SURE):
        return Decision(first, score, "classifier")
    if not any(same(first, x) for x in (BLANK, HUMAN, VEHICLE)) and (score > ANIMAL_CLASS_SURE or (
            score > ANIMAL_CLASS and category == "animal" and conf > BOX_MID)):
        found = _geofenced(ranked, country, region, rules)
        if found is not None:
            return found
    found = _rollup(ranked, ROLLUP_RANKS, ROLLUP, country, region, rules, "classifier+")
    if found is not None:
        return found
    return Decision({"person": HUMAN, "vehicle": VEHICLE}.get(category, ANIMAL), conf, "detector")
