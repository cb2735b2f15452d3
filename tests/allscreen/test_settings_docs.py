"""Every setting is documented: the README's configuration table names each ALLSCREEN_ variable."""

from __future__ import annotations

import re

from allscreen.defaults import REPO_ROOT
from allscreen.settings import Settings


def test_the_readme_configuration_table_lists_every_setting() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`ALLSCREEN_([A-Z_]+)`", table))
    assert {name.upper() for name in Settings.model_fields} <= documented
