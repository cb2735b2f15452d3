"""Which case (patient, slide, accession) each image of an archive belongs to.

Two ways to say it: `--case-level N`, where the folder N levels below the submitted root names
the case (its path from the root down to that folder is the case's name), or
`--case-manifest FILE.csv` with columns `path,case` and optionally `patient`, paths relative
to the root. Cases are stored when images are registered (`producer.register`).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from allscreen.errors import CaseConflict

CaseName = tuple[str, str | None]  #: (case, patient)


@dataclass(slots=True)
class CaseNamer:
    """Names the case of an image from its path relative to the archive root."""

    level: int | None = None  #: folder depth below the root that names the case
    manifest: dict[str, CaseName] | None = None  #: relative path → (case, patient)
    roots: int = 1  #: paths submitted; with several, relative paths start with the root's name
    unmapped: int = field(default=0)  #: images the manifest does not name

    def case_of(self, rel: str) -> CaseName | None:
        """The case of the image at relative path `rel`, or None when it is in no case."""
        if self.manifest is not None:
            found = self.manifest.get(_normal(rel))
            if found is None:
                self.unmapped += 1
            return found
        if self.level is None:
            return None
        folders = PurePosixPath(rel).parts[:-1]
        depth = self.level + (1 if self.roots > 1 else 0)
        if len(folders) < depth:
            raise CaseConflict(
                f"--case-level {self.level}: {rel} lies {len(folders)} folder(s) below its root, "
                f"so no folder {self.level} level(s) down names its case; use a smaller level "
                "or --case-manifest"
            )
        return "/".join(folders[:depth]), None


def _normal(path: str) -> str:
    p = path.strip().replace("\\", "/")
    while p.startswith("./"):
        p = p[2:]
    return p


def read_manifest(path: Path) -> dict[str, CaseName]:
    """`path,case[,patient]` rows as a lookup; a malformed or contradictory file is refused."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = set(reader.fieldnames or [])
            if not {"path", "case"} <= columns:
                raise CaseConflict(
                    f"case manifest {path} needs the columns path,case (optional patient); "
                    f"it has {', '.join(sorted(columns)) or 'none'}"
                )
            out: dict[str, CaseName] = {}
            patients: dict[str, str | None] = {}
            for n, row in enumerate(reader, start=2):
                rel, case = _normal(row["path"] or ""), (row["case"] or "").strip()
                patient = (row.get("patient") or "").strip() or None
                if not rel or not case:
                    raise CaseConflict(f"case manifest {path}, line {n}: empty path or case")
                if rel in out and out[rel] != (case, patient):
                    raise CaseConflict(
                        f"case manifest {path}, line {n}: {rel} is given two cases "
                        f"({out[rel][0]} and {case})"
                    )
                if patients.setdefault(case, patient) != patient:
                    raise CaseConflict(
                        f"case manifest {path}, line {n}: case {case} is given two patients "
                        f"({patients[case]} and {patient})"
                    )
                out[rel] = (case, patient)
    except OSError as exc:
        raise CaseConflict(f"cannot read case manifest {path}: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CaseConflict(f"case manifest {path} is not a UTF-8 CSV file: {exc}") from exc
    return out
