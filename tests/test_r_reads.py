"""The answers as R reads them: the README's R lines (section "Answers"), run as written with Rscript on a
generated run, see the matrices and tables Odin meant: row names = deployment ids, NA where Odin wrote NA,
numbers where it wrote numbers. unmarked and overlap are not in Debian, so their two functions are stand-ins
that keep what they were given; everything else is base R reading Odin's CSV."""

from __future__ import annotations

import csv
import math
import re
import subprocess
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import ROOT, debian_binary
from test_answers import cluster, daily_photos, dep_row, t

from wildlife.answers import FOLDER, tables
from wildlife.outputs import DEPLOYMENTS_SCHEMA

# what unmarked's and overlap's functions would be handed, kept for the checks below
STAND_INS = r"""
seen <- new.env()
unmarkedFrameOccu <- function(y, siteCovs = NULL, obsCovs = NULL) {
  seen$y <- y; seen$effort <- obsCovs$effort; structure(list(), class = "unmarkedFrameOccu") }
occu <- function(formula, data, ...) invisible(NULL)
overlapEst <- function(A, B, ...) { seen$A <- A; seen$B <- B; c(Dhat1 = NA, Dhat4 = NA, Dhat5 = NA) }
"""

# one line per fact, "object<TAB>fact<TAB>values joined by \x1f", read back by _r_view
PROBE = r"""
out <- file("r_view.tsv", open = "w", encoding = "UTF-8")
say <- function(name, key, v) writeLines(paste(name, key, paste(v, collapse = "\x1f"), sep = "\t"), out)
matrix_facts <- function(name, x) {
  say(name, "typeof", typeof(x)); say(name, "is.matrix", is.matrix(x)); say(name, "dim", dim(x))
  say(name, "rownames", rownames(x)); say(name, "colnames", colnames(x))
  for (i in seq_len(nrow(x))) say(name, paste0("row", i), ifelse(is.na(x[i, ]), "<NA>", format(x[i, ], digits = 15)))
}
matrix_facts("y", seen$y); matrix_facts("effort", seen$effort); matrix_facts("camop", camop)
for (name in c("rai", "act")) { d <- get(name); say(name, "nrow", nrow(d)); say(name, "names", names(d))
  say(name, "numeric", vapply(d, is.numeric, NA)); say(name, "deployment_id", d$deployment_id) }
say("rai", "na", ifelse(is.na(rai$rai), "<NA>", format(rai$rai, digits = 15)))
say("overlap", "A", format(seen$A, digits = 15)); say("overlap", "B", format(seen$B, digits = 15))
close(out)
"""


def readme_r(section: str = "## Answers") -> str:
    """The R code blocks of the README's section, as written; ``library(unmarked)`` and ``overlap::`` go (the
    stand-ins take their place)."""
    text = (ROOT / "README.md").read_text()
    start = text.index(section)
    end = text.find("\n## ", start + 1)
    code = "\n".join(re.findall(r"```r\n(.*?)```", text[start:end if end > 0 else None], flags=re.S))
    assert "read.csv" in code, "the README's Answers section has no R lines to check"
    return re.sub(r"library\((unmarked|overlap)\)\n?", "", code).replace("overlap::", "")


def _r_view(path: Path) -> dict[tuple[str, str], list[str]]:
    view = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, key, values = line.split("\t")
        view[(name, key)] = values.split("\x1f") if values else []
    return view


def _csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


@pytest.fixture(scope="module")
def rscript() -> str:
    return debian_binary("r-base-core", "Rscript")


def generated_run(out: Path) -> Path:
    """Four deployments numbered as field teams number them (ids R reads as numbers if let), a silence that
    makes NA occasions, one deployment without photos (no trap-night: RAI NA), foxes and badgers (the taxa the
    README's lines name) and a record without a classifier."""
    photos = {"001": daily_photos("001", [1, 2, 3, 4, 5, 25, 26, 27, 28, 29, 30]),
              "002": daily_photos("002", range(11, 21)), "010": daily_photos("010", range(1, 29)), "011": []}
    windows = {"001": (t(1), t(30)), "002": (t(11), t(20)), "010": (t(1), t(28)), "011": (t(1), t(9))}
    deps = pa.Table.from_pylist([dep_row(d, *windows[d], [p["timestamp"] for p in ps]) for d, ps in photos.items()],
                                schema=DEPLOYMENTS_SCHEMA)
    media = pa.Table.from_pylist([p for ps in photos.values() for p in ps])
    clusters = [cluster("001", 0, t(3, 21.5), name="Vulpes vulpes"), cluster("001", 1, t(27, 2), name="Vulpes vulpes"),
                cluster("002", 0, t(19, 23), name="Vulpes vulpes"), cluster("010", 0, t(5, 1), name="Meles meles"),
                cluster("010", 1, t(15, 3), name="Meles meles"), cluster("010", 2, t(16, 22), name="Vulpes vulpes"),
                cluster("010", 3, t(20, 12))]
    tables.write(str(out), media, pa.Table.from_pylist(clusters), deps, {"occasion_days": 7})
    return out


def test_r_reads_the_answers_as_odin_wrote_them(rscript: str, tmp_path: Path):
    run = generated_run(tmp_path / "run")
    answers = run / FOLDER
    (run / "check.R").write_text(STAND_INS + readme_r() + "\n" + PROBE, encoding="utf-8")
    done = subprocess.run([rscript, "--vanilla", "check.R"], cwd=run, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    view = _r_view(run / "r_view.tsv")

    def same_matrix(name: str, written: list[list[str]]):
        """R's matrix is the CSV's: dims, row names (deployment ids), column names, NA exactly where Odin wrote
        NA, the same numbers elsewhere, and numeric (integer or double, which unmarked and camtrapR take)."""
        rows = written[1:]
        header = written[0][-(len(rows[0]) - 1):]  # the column names, whatever stands above the row names
        assert view[(name, "is.matrix")] == ["TRUE"]
        assert view[(name, "typeof")][0] in ("integer", "double"), view[(name, "typeof")]
        assert view[(name, "dim")] == [str(len(rows)), str(len(header))]
        assert view[(name, "rownames")] == [r[0] for r in rows] == ["001", "002", "010", "011"]
        assert view[(name, "colnames")] == header
        for i, row in enumerate(rows, 1):
            seen = view[(name, f"row{i}")]
            assert [v == "<NA>" for v in seen] == [v == "NA" for v in row[1:]], (name, i)
            assert all(math.isclose(float(s), float(w)) for s, w in zip(seen, row[1:], strict=True) if w != "NA")

    history = _csv(answers / "detection_histories" / "Vulpes_vulpes.csv")
    same_matrix("y", history)
    assert {v for r in history[1:] for v in r[1:]} == {"0", "1", "NA"}  # a history with each value to check
    same_matrix("effort", _csv(answers / "detection_histories" / "effort.csv"))
    camop = _csv(answers / "camera_operation.csv")
    same_matrix("camop", camop)
    assert camop[0][-len(camop[1]) + 1] == "2021-04-01" and "NA" in camop[2]  # dates: check.names = FALSE

    rai = _csv(answers / "rai.csv")
    assert view[("rai", "names")] == rai[0] and view[("rai", "deployment_id")] == [r[0] for r in rai[1:]]
    numeric = dict(zip(rai[0], view[("rai", "numeric")], strict=True))
    assert [k for k, v in numeric.items() if v == "TRUE"] == ["records", "records_outside_effort", "trap_nights", "rai"]
    assert [v == "<NA>" for v in view[("rai", "na")]] == [r[-1] == "NA" for r in rai[1:]]
    assert "NA" in [r[-1] for r in rai[1:]]  # deployment 011 has no trap-night

    act = list(csv.DictReader((answers / "activity.csv").open(newline="", encoding="utf-8")))
    assert view[("act", "deployment_id")] == [r["deployment_id"] for r in act] and len(act) == 7
    numeric = dict(zip(act[0], view[("act", "numeric")], strict=True))
    assert numeric["clock_hour"] == numeric["sun_hour"] == "TRUE"
    for key, taxon, n in (("A", "Vulpes vulpes", 4), ("B", "Meles meles", 2)):  # overlapEst's two samples
        radians = [float(r["sun_hour"]) * math.pi / 12 for r in act if r["taxon"] == taxon]
        assert len(radians) == n and [float(v) for v in view[("overlap", key)]] == pytest.approx(radians)
