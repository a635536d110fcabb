"""The README stays true: every variable the kit reads is in its configuration table."""

from __future__ import annotations

import re

from tests.support.workers import ROOT


def test_every_configuration_variable_is_documented() -> None:
    # Each concern reads its own variables, next to the code that uses them.
    readers = [*ROOT.glob("project/**/settings.py"), *ROOT.glob("tasks/**/settings.py")]
    source = "\n".join(p.read_text() for p in [*readers, ROOT / "project" / "storage.py"])
    variables = set(re.findall(r'env\.\w+\(\s*"([A-Z_]+)"', source))
    assert "REDIS_URL" in variables and len(variables) > 15
    readme = (ROOT / "README.md").read_text()
    missing = sorted(v for v in variables if f"| `{v}` |" not in readme)
    assert not missing, f"add these to the README's configuration table: {missing}"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    command = next(line for line in ci.splitlines() if "pytest" in line).strip()
    assert command in (ROOT / "README.md").read_text()
