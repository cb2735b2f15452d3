"""The one exception tree of allscreen. Each error knows its exit code and prints itself."""

from __future__ import annotations

import sys


class AllscreenError(Exception):
    """Raised when allscreen meets an expected failure; the CLI prints it without a traceback."""

    exit_code = 1

    def show(self) -> None:
        """Print the error as one line on stderr."""
        print(f"allscreen: error: {self}", file=sys.stderr)


class ConfigError(AllscreenError):
    """Raised when a setting is missing, malformed or points at something unusable."""

    exit_code = 2


class BrokerUnavailable(AllscreenError):
    """Raised when the broker (Redis) cannot be reached."""

    exit_code = 3


class DatabaseUnavailable(AllscreenError):
    """Raised when the results database cannot be reached."""

    exit_code = 3


class SchemaOutdated(AllscreenError):
    """Raised when the database schema is older (or newer) than this version of allscreen."""

    exit_code = 4


class SchemaMissing(SchemaOutdated):
    """Raised when the database holds no allscreen schema yet (nothing has created it)."""


class RunNotFound(AllscreenError):
    """Raised when a command names a screening run that does not exist."""

    exit_code = 5


class ModelError(AllscreenError):
    """Raised when the model file is missing, not executable, or fails to start or answer."""

    exit_code = 6


class ModelCrashed(ModelError):
    """Raised when the model process died or hung during a classification."""


class ModelRefused(ModelError):
    """Raised when the model answers a request with an error reply (`success: false`)."""


class ModelMismatch(ModelError):
    """Raised when a run is pinned to a model other than the one this device holds."""


class ChecksFailed(AllscreenError):
    """Raised when `allscreen worker --check` finds a device check failing (exit code 1)."""


class ImageRejected(AllscreenError):
    """Raised when an image cannot be decoded or breaks a decoding limit."""


class BadMessage(AllscreenError):
    """Raised when a task message is malformed or carries unknown fields."""


class CaseConflict(AllscreenError):
    """Raised when a case mapping contradicts the one a run already holds, or cannot be read."""

    exit_code = 2


class PolicyError(AllscreenError):
    """Raised when a screening policy is malformed or names labels the run's model lacks."""

    exit_code = 2


class ReviewError(AllscreenError):
    """Raised when a verdict names an unknown image or a label the run's model does not have."""

    exit_code = 2


class PathMismatch(AllscreenError):
    """Raised when the archive root or path key given for a run is not the one it was
    submitted with, or a run's stored-path mode is contradicted."""

    exit_code = 2
