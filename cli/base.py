"""The `allscreen` click group and the small pieces its commands share."""

from __future__ import annotations

import click

from allscreen.errors import ConfigError


def _sha256_option(value: str | None) -> str | None:
    """A model pin: 64 hex digits (as `allscreen worker --check` and `devices` print it)."""
    if value is None:
        return None
    pin = value.strip().lower()
    if len(pin) != 64 or any(c not in "0123456789abcdef" for c in pin):
        raise ConfigError(
            f"--model-sha256 needs the 64-hex-digit sha256 of a model file, got {value!r} "
            "(`allscreen worker --check` and `allscreen devices --json` print it)"
        )
    return pin


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Screen blood-smear archives for ALL on a fleet of Edge Impulse devices."""
