"""A real browser for tests: headless Chromium takes screenshots and dumps the rendered DOM."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from PIL import Image, ImageStat

from tests.conftest import need

BROWSERS = ("chromium", "chromium-browser", "google-chrome")  #: names tried, in order
BROWSER_SECONDS = 90.0  #: a cold start of Chromium in a container can take a while
#: Flags for a quiet, sandbox-free, network-free (but for the page itself) headless run.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=5000",  # let scripts and late requests settle before capturing
)
#: Resolves every host name to nothing: a page that needs the internet shows it at once.
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND"


def chromium() -> str:
    """The Chromium binary; skip (fail in CI) where none is installed."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    need("no Chromium: `scripts/dev services` installs it (apt-get install -y chromium)")
    raise AssertionError("unreachable")


def _run(url: str, *extra: str, offline: bool) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="allscreen-chromium-") as profile:
        args = [chromium(), *FLAGS, f"--user-data-dir={profile}", *extra]
        if offline:
            args.append(OFFLINE)
        return subprocess.run(
            [*args, url],
            capture_output=True,
            text=True,
            timeout=BROWSER_SECONDS,
            check=False,
        )


def screenshot(url: str, png: Path, *, size: tuple[int, int], offline: bool = False) -> Path:
    """Render `url` in a `size` window and save a PNG screenshot to `png`."""
    done = _run(url, f"--screenshot={png}", f"--window-size={size[0]},{size[1]}", offline=offline)
    assert png.exists(), f"no screenshot of {url}: {done.stderr[-2000:]}"
    return png


def dump_dom(url: str, *, offline: bool = False) -> str:
    """The DOM of `url` after it loaded and its scripts ran, serialised as HTML."""
    done = _run(url, "--dump-dom", offline=offline)
    assert done.returncode == 0 and done.stdout, f"no DOM for {url}: {done.stderr[-2000:]}"
    return done.stdout


def pixel_spread(png: Path) -> float:
    """Standard deviation of the screenshot's grey levels: near 0 means a blank page."""
    with Image.open(png) as im:
        return float(ImageStat.Stat(im.convert("L")).stddev[0])
