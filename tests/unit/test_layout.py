"""The house's rules, checked on the code itself: each folder one concern, arrows one way,
every module small enough to read in one sitting."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[2] / "functions" / "triage"
OUTSIDE = ("google", "chromadb", "torch", "sentence_transformers", "transformers", "flask", "werkzeug", "httpx")


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, relative imports resolved to ``triage.<...>``."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = parts if path.name == "__init__.py" else parts[:-1]
    if package[-1:] == ["__init__"]:
        package = package[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
                found.add(module)
                found |= {f"{module}.{alias.name}" for alias in node.names}
            elif node.module:
                found.add(node.module)
    return found


def modules(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py")) if folder else sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("folder", ["adapters", "sources"])
def test_adapters_and_sources_never_import_the_service_or_http_layers(folder):
    for path in modules(folder):
        upward = {m for m in imports(path) if m.startswith(("triage.service", "triage.http", "triage.bootstrap"))}
        upward |= {m for m in imports(path) if m.startswith(("triage.cli", "triage.views", "triage.offline"))}
        assert not upward, f"{path.relative_to(PACKAGE)} imports {sorted(upward)}"


def test_sources_import_only_the_domain_and_the_errors():
    for path in modules("sources"):
        inside = {m for m in imports(path) if m.startswith("triage.")}
        allowed = ("triage.domain", "triage.errors", "triage.sources")
        assert all(m.startswith(allowed) for m in inside), f"{path.relative_to(PACKAGE)}: {sorted(inside)}"


@pytest.mark.parametrize("path", [*modules("domain"), PACKAGE / "policy.py"], ids=lambda p: p.name)
def test_the_domain_and_the_policy_import_no_outside_system(path):
    outside = {m for m in imports(path) if m.split(".")[0] in OUTSIDE}
    inside = {
        m for m in imports(path) if m.startswith("triage.") and not m.startswith(("triage.domain", "triage.errors"))
    }
    assert not outside and not inside, f"{path.name}: {sorted(outside | inside)}"


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in modules("") if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}


def test_the_entry_points_only_look_up_their_handler():
    main = (PACKAGE.parent / "main.py").read_text(encoding="utf-8")
    # start_instance, http_app, settings, handle_message: no wiring by hand
    assert main.count("bootstrap.") <= 4
