"""The README's configuration table and the code name the same settings."""

from __future__ import annotations

import re
from pathlib import Path

from triage.config import Settings

README = Path(__file__).parents[2] / "README.md"


def test_every_setting_is_in_the_readme_table_and_nothing_else():
    section = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set()
    for row in section.splitlines():
        if row.startswith("| `"):
            first_cell = row.split("|")[1]
            documented |= set(re.findall(r"`([A-Z][A-Z0-9_]*)`", first_cell))
    assert documented == {name.upper() for name in Settings.model_fields}
