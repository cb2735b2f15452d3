"""Every setting is documented: docs/configuration.md names each ALLSCREEN_ variable."""

from __future__ import annotations

import re

from allscreen.defaults import REPO_ROOT
from allscreen.settings import Settings


def test_the_configuration_page_lists_every_setting() -> None:
    table = (REPO_ROOT / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"`ALLSCREEN_([A-Z_]+)`", table))
    assert {name.upper() for name in Settings.model_fields} <= documented


def test_the_readme_stays_short_and_every_page_it_links_exists() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert len(readme.encode()) < 10_000  # what a newcomer reads first; details live in docs/
    for link in re.findall(r"\]\(([^)#]+)\)", readme):
        if not link.startswith("http"):
            assert (REPO_ROOT / link).exists(), link
