"""allscreen: bulk retrospective screening of ALL blood-smear archives on a fleet of devices.

The shared core lives here: settings, the results schema, task names and the error tree. Both
the producer and the worker import it, so the two sides never drift apart.
"""

__version__ = "0.1.0"
