"""Storing cases as images are registered: create each case once, then keep every image in one.

A case name is unique in its run. An image (one content, so one row per run) stays in the
case it was first registered in: a mapping that puts it elsewhere is refused with both names,
never applied silently.
"""

from __future__ import annotations

from sqlalchemy import Engine, select, update

from allscreen.db import dialect_insert
from allscreen.errors import CaseConflict
from allscreen.schema import Case, Image
from producer.cases import CaseName


def assign_cases(
    engine: Engine, run_id: int, rows: list[dict[str, object]], named: list[CaseName | None]
) -> dict[str, int]:
    """Create the chunk's cases and set each row's `case_id`; returns sha256 → wanted case id."""
    given = {c for c in named if c is not None}
    if not given:
        return {}
    patients = {name: patient for name, patient in given}
    with engine.begin() as conn:
        conn.execute(
            dialect_insert(engine, Case.__table__).on_conflict_do_nothing(
                index_elements=["run_id", "name"]
            ),
            [{"run_id": run_id, "name": n, "patient": p} for n, p in sorted(patients.items())],
        )
        stored = conn.execute(
            select(Case.id, Case.name, Case.patient).where(
                Case.run_id == run_id, Case.name.in_(list(patients))
            )
        ).all()
        ids: dict[str, int] = {}
        for case_id, name, patient in stored:
            new = patients[name]
            if patient is not None and new is not None and patient != new:
                raise CaseConflict(
                    f"case {name} is already recorded for patient {patient}; "
                    f"the new mapping says {new}"
                )
            if patient is None and new is not None:
                conn.execute(update(Case).where(Case.id == case_id).values(patient=new))
            ids[name] = int(case_id)
    wanted: dict[str, int] = {}
    for row, case in zip(rows, named, strict=True):
        if case is not None:
            row["case_id"] = ids[case[0]]
            wanted[str(row["sha256"])] = ids[case[0]]
    return wanted


def check_cases(
    engine: Engine, run_id: int, rows: list[dict[str, object]], wanted: dict[str, int]
) -> None:
    """Put images registered earlier without a case in theirs; refuse one in another case."""
    with engine.begin() as conn:
        stored = conn.execute(
            select(Image.id, Image.sha256, Image.case_id).where(
                Image.run_id == run_id, Image.sha256.in_(list(wanted))
            )
        ).all()
        for image_id, sha, case_id in stored:
            if case_id is None:
                conn.execute(update(Image).where(Image.id == image_id).values(case_id=wanted[sha]))
            elif case_id != wanted[sha]:
                names = dict(
                    conn.execute(
                        select(Case.id, Case.name).where(Case.id.in_([case_id, wanted[sha]]))
                    ).all()
                )
                path = next(str(r["path"]) for r in rows if r["sha256"] == sha)
                raise CaseConflict(
                    f"{path} is already in case {names.get(case_id)} of this run (the same "
                    f"image content); the new mapping puts it in case {names.get(wanted[sha])}. "
                    "Resubmit with the mapping the run was registered with"
                )
