"""Species classification: the label format every classifier speaks, and what Stage 1 hands Stage 2.

A label is SpeciesNet's taxonomy line, seven fields separated by ``;``::

    uuid;class;order;family;genus;species;common name
    f1856211-cfb7-4a5b-9158-c0f72fd09ee6;;;;;;blank
    e4d1e892-0e4b-475a-a8ac-b5c3502e0d55;mammalia;carnivora;canidae;vulpes;vulpes;red fox

Any classifier Odin runs (SpeciesNet, or an ONNX model with a sidecar) names its outputs in this format, so
the geofence, the rollup and every table downstream read one kind of label. The lower-case epithet in
``species`` is completed with the genus into a scientific name ("Vulpes vulpes").

Hand-over (the one definition; Stage 1 writes, Stage 2 and the outputs read):

* Stage 1 gives each detection it classified ``classifications``: the classifier's top labels and their raw
  scores, best first (``TOP_K`` of them), or null where no classifier looked at the box.
* Stage 1 writes ``classifier.json`` in its folder (``RULES_FILE``): the classifier's name and version, its
  full label list, and its geofence where it has one, so Stage 2 applies the geofence and the rollup
  without the model (on AWS: in a Lambda), and again with another ``--country``.
* ``detections.parquet`` carries the decision: ``label`` (the full label line), ``scientific_name``,
  ``common_name``, ``taxon_rank``, ``class_score`` (the classifier's top raw score), ``label_score`` (the
  score after rollup), ``label_source`` (how the label was reached) and ``classifier`` (name and version).
"""

from __future__ import annotations

from dataclasses import dataclass

TOP_K = 5
RULES_FILE = "classifier.json"
RANKS = ("class", "order", "family", "genus", "species")


@dataclass(frozen=True)
class Label:
    uuid: str
    class_: str
    order: str
    family: str
    genus: str
    species: str
    common_name: str

    @classmethod
    def parse(cls, line: str) -> Label:
        parts = line.strip().split(";")
        if len(parts) != 7:
            raise ValueError(f"a label has 7 fields separated by ';' (uuid;class;order;family;genus;species;"
                             f"common name), not {len(parts)}: {line.strip()[:120]!r}")
        return cls(*(p.strip() for p in parts[:6]), parts[6].strip())

    @property
    def text(self) -> str:
        return ";".join((self.uuid, self.class_, self.order, self.family, self.genus, self.species, self.common_name))

    @property
    def taxonomy(self) -> tuple[str, ...]:
        """class..species as far as they are filled (empty for blank, vehicle, the bare "animal")."""
        levels = (self.class_, self.order, self.family, self.genus, self.species)
        filled = []
        for value in levels:
            if not value:
                break
            filled.append(value)
        return tuple(filled)

    @property
    def rank(self) -> str | None:
        """The lowest filled rank (``species``, ``genus``...), or None for a label outside the taxonomy."""
        levels = self.taxonomy
        return RANKS[len(levels) - 1] if levels else None

    @property
    def scientific_name(self) -> str | None:
        levels = self.taxonomy
        if not levels:
            return None
        if len(levels) == 5:
            return f"{levels[3].capitalize()} {levels[4].lower()}"
        return levels[-1].capitalize()
