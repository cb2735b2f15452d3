"""Alembic migrations for the allscreen results schema."""
