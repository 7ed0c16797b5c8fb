"""Documentation stays true: every command, metric and setting is documented."""

from __future__ import annotations

import re
from pathlib import Path

from ctis.cli.main import app
from ctis.metrics import METRICS

ROOT = Path(__file__).resolve().parents[1]


def test_every_cli_command_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for command in app.registered_commands:
        name = command.name or command.callback.__name__.rstrip("_")  # type: ignore[union-attr]
        assert f"ctis {name}" in readme, name
    for group in app.registered_groups:
        for command in group.typer_instance.registered_commands:  # type: ignore[union-attr]
            assert f"ctis {group.name} {command.name}" in readme, (group.name, command.name)


def test_every_metric_is_in_the_metrics_doc() -> None:
    doc = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    for key in METRICS:
        assert f"`{key}`" in doc, key


def test_every_environment_variable_is_documented() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    used = set()
    for path in [*(ROOT / "src").rglob("*.py"), ROOT / "tests" / "conftest.py"]:
        used |= set(re.findall(r"\"(CTIS_[A-Z_]+)\"", path.read_text(encoding="utf-8")))
    for name in used:
        assert f"`{name}`" in readme, name
