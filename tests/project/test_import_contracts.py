"""The app boundaries that `make lint` enforces: lint-imports passes on the real tree and fails on a bad import.

The bad imports are written into a throwaway copy of the apps in a temp dir, never into the repository.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
# The packages lint-imports analyses (root_packages in pyproject.toml).
PACKAGES = ["chatbot_saas", "conversations", "webhooks", "bots", "knowledge", "billing", "tenants"]


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-logo", "--no-cache", str(root / "pyproject.toml")],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        # Only the copy under test is importable, so grimp reads its files and not the repository's.
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)},
    )


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    """A copy of the apps and the contracts, to break on purpose."""
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _append_import(root: Path, module: str, line: str) -> None:
    path = root / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text() + f"\n{line}\n")


def test_the_real_tree_keeps_every_import_contract() -> None:
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_copy_of_the_tree_keeps_the_contracts_before_it_is_broken(tree_copy: Path) -> None:
    # Guards the tests below: they fail because of the import they add, not because of the copy.
    result = _lint_imports(tree_copy)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "bad_import", "message"),
    [
        ("tenants.services", "from billing.models import Plan", "tenants is not allowed to import billing"),
        ("knowledge.selectors", "import bots.models", "knowledge is not allowed to import bots"),
        ("knowledge.services", "from conversations import models", "knowledge is not allowed to import conversations"),
        ("bots.validation", "from conversations.models import Message", "bots is not allowed to import conversations"),
        ("billing.quotas", "from knowledge.models import Document", "billing is not allowed to import knowledge"),
        ("billing.services", "from bots.models import Bot", "billing is not allowed to import bots"),
        ("tenants.models", "from chatbot_saas import urls", "tenants is not allowed to import chatbot_saas"),
    ],
)
def test_a_downward_app_importing_an_upper_one_fails_lint_naming_the_contract(
    tree_copy: Path, module: str, bad_import: str, message: str
) -> None:
    _append_import(tree_copy, module, bad_import)
    result = _lint_imports(tree_copy)
    assert result.returncode != 0
    assert "Apps import one way" in result.stdout
    assert message in result.stdout
    assert f"{module} ->" in result.stdout


def test_an_import_hidden_inside_a_function_still_fails_lint(tree_copy: Path) -> None:
    _append_import(tree_copy, "tenants.selectors", "def _late():\n    from billing import quotas  # noqa: F401")
    result = _lint_imports(tree_copy)
    assert result.returncode != 0
    assert "tenants is not allowed to import billing" in result.stdout


def test_a_shared_leaf_helper_that_imports_an_app_fails_lint(tree_copy: Path) -> None:
    # Apps may import chatbot_saas.errors only because it imports no app; that must stay true.
    _append_import(tree_copy, "chatbot_saas.errors", "import billing.models")
    result = _lint_imports(tree_copy)
    assert result.returncode != 0
    assert "chatbot_saas's shared leaf helpers import no app" in result.stdout
    assert "chatbot_saas.errors is not allowed to import billing" in result.stdout


def test_every_app_may_import_the_shared_leaf_helpers(tree_copy: Path) -> None:
    _append_import(tree_copy, "tenants.context", "from chatbot_saas.env import envbool  # noqa: F401")
    result = _lint_imports(tree_copy)
    assert result.returncode == 0, result.stdout + result.stderr
