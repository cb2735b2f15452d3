"""The `allscreen` command line: one click group, to which each module here adds commands.

`runs` (submit, status, resume, export, report), `fleet` (worker, devices, flower, metrics),
`screening` (policy, review), `admin` (db, demo) and the review page's `serve` command
(`reviewweb.command`). The shared core `allscreen/` imports none of them, nor the sides they
drive: only the command line ties the producer, the read side and the worker together.
"""
