"""Running the real `allscreen` command in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from allscreen.settings import Settings, settings_env


def allscreen(
    *args: str,
    settings: Settings | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m allscreen ARGS` and capture its output."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("ALLSCREEN_")}
    if settings is not None:
        full.update(settings_env(settings))
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "allscreen", *args],
        env=full,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
