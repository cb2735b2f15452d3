"""Alembic migrations for the allscreen results schema.

`versions/` holds one migration a file. A migration never imports application code: SQL that
the application generates (the tally triggers) is frozen in `frozen/<revision>.json` when the
migration is written (`frozen_sql.py` says how), so a migration does in a year what it does
today.
"""
