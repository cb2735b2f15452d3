"""The review web page: hematologists work through a run's review queue in a browser.

`allscreen serve` runs one ASGI app (Starlette, served by uvicorn) with server-side Jinja2
templates. Verdicts go through `readout.verdicts.record_verdicts`, the code the CLI uses.
"""
