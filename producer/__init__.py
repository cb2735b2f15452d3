"""Putting an archive into a run: scan, register in SQL, enqueue batches, follow progress."""
