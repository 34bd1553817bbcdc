"""docs/configuration.md documents every environment variable the code reads, and .env.example lists them.

The variables are found in the code, not in a list kept here: every call in
chatbot_saas/settings.py of a helper imported from chatbot_saas/env.py (envint, envstr, ...)
with a literal name, and every literal `os.environ.get(...)` / `os.getenv(...)` in chatbot_saas/
(the launcher and the web server read a few themselves).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIGURATION = ROOT / "docs" / "configuration.md"
ENV_EXAMPLE = ROOT / ".env.example"
NAME = re.compile(r"[A-Z][A-Z0-9_]*[A-Z0-9]")
# Where a documented variable may be read: Python code, and the process definitions.
SOURCES = ["Procfile", "Makefile", "Dockerfile", "docker-compose.yml"]


def _env_helpers(tree: ast.Module) -> set[str]:
    """The names settings.py imports from chatbot_saas/env.py (envint, envstr, required, env...)."""
    return {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module in ("env", "chatbot_saas.env")
        for alias in node.names
    }


def _literal_name(call: ast.Call) -> str | None:
    first = call.args[0] if call.args else None
    if isinstance(first, ast.Constant) and isinstance(first.value, str) and NAME.fullmatch(first.value):
        return first.value
    return None


def _is_os_environ_read(func: ast.expr) -> bool:
    if isinstance(func, ast.Attribute) and func.attr == "getenv":
        return isinstance(func.value, ast.Name) and func.value.id == "os"
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "get"
        and isinstance(func.value, ast.Attribute)
        and func.value.attr == "environ"
    )


def _is_helper_call(func: ast.expr, helpers: set[str]) -> bool:
    if isinstance(func, ast.Name):
        return func.id in helpers
    # env.str("X"), env.db("X"), ...: django-environ's own readers on the imported `env`.
    return isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in helpers


def variables_read_by_the_code() -> set[str]:
    names: set[str] = set()
    for path in sorted((ROOT / "chatbot_saas").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        helpers = _env_helpers(tree) if path.name == "settings.py" else set()
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            if _is_os_environ_read(node.func) or _is_helper_call(node.func, helpers):
                name = _literal_name(node)
                if name:
                    names.add(name)
    return names


def variables_documented() -> set[str]:
    """Backticked names in the first column of the tables of docs/configuration.md."""
    names: set[str] = set()
    for line in CONFIGURATION.read_text(encoding="utf-8").splitlines():
        if line.startswith("|") and line.count("|") >= 3:
            first_cell = line.split("|")[1]
            names.update(n for n in re.findall(r"`([^`]+)`", first_cell) if NAME.fullmatch(n))
    return names


def variables_in_env_example() -> set[str]:
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    return {match.group(1) for line in lines if (match := re.match(r"([A-Z][A-Z0-9_]*)=", line))}


def test_the_scan_finds_the_variables_settings_reads():
    read = variables_read_by_the_code()
    # A scan that silently stopped finding anything would make the tests below pass vacuously.
    assert {"SECRET_KEY", "DATABASE_URL", "DJANGO_DEBUG", "ALLOWED_HOSTS", "KNOWLEDGE_MAX_PAGES", "WEB_WORKERS"} <= read


def test_every_variable_the_code_reads_is_documented_in_configuration_md():
    missing = variables_read_by_the_code() - variables_documented()
    assert not missing, f"add these to a table in docs/configuration.md: {sorted(missing)}"


def test_every_variable_in_env_example_is_documented_in_configuration_md():
    missing = variables_in_env_example() - variables_documented()
    assert not missing, f"add these to a table in docs/configuration.md: {sorted(missing)}"


def test_every_documented_variable_is_in_env_example():
    missing = variables_documented() - variables_in_env_example()
    assert not missing, f"add these to .env.example: {sorted(missing)}"


NOT_SOURCES = {"var", "test-artifacts", "node_modules", "static"}


def test_every_documented_variable_is_still_read_somewhere():
    # The project's own folders: walking .venv and var/ (the embedded Postgres) took ~40 s.
    folders = [d for d in ROOT.iterdir() if d.is_dir() and d.name not in NOT_SOURCES and not d.name.startswith(".")]
    sources = [p.read_text(encoding="utf-8") for d in folders for p in d.rglob("*.py")]
    sources += [(ROOT / name).read_text(encoding="utf-8") for name in SOURCES if (ROOT / name).exists()]
    text = "\n".join(sources)
    stale = {name for name in variables_documented() if name not in text}
    assert not stale, (
        f"documented but read nowhere; remove them from docs/configuration.md and .env.example: {sorted(stale)}"
    )
