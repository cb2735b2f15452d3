"""Reading runs back from SQL: status, export, report, metrics, devices, and screening calls.

The other side of `producer/` (which puts an archive into a run). Nothing here writes results;
everything is derived from the stored rows at read time.
"""
