"""`make lint` runs mypy against scripts/mypy_baseline.txt: a new type error fails, a fixed one asks
for the baseline to shrink, and moving an old error to another line changes nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scripts.mypy_baseline import error_keys

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "mypy_baseline.py"
BAD = 'def greeting(name: str) -> str:\n    return "hello " + name\n\n\ncount: int = greeting("ada")\n'
FIXED = BAD.replace("count: int", "count: str")


def _check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600, check=False
    )


@pytest.mark.slow
def test_a_new_type_error_fails_the_check_and_is_named(tmp_path):
    module = tmp_path / "bad.py"
    module.write_text(BAD)
    result = _check("--baseline", str(tmp_path / "baseline.txt"), str(module))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 new error(s) not in the baseline" in result.stdout
    assert "bad.py: [assignment] Incompatible types in assignment" in result.stdout


@pytest.mark.slow
def test_a_known_error_passes_and_once_fixed_the_baseline_must_shrink(tmp_path):
    module, baseline = tmp_path / "bad.py", tmp_path / "baseline.txt"
    module.write_text(BAD)
    assert _check("--baseline", str(baseline), "--update", str(module)).returncode == 1  # it may not grow
    assert _check("--baseline", str(baseline), "--update", "--allow-growth", str(module)).returncode == 0
    assert "[assignment]" in baseline.read_text()

    known = _check("--baseline", str(baseline), str(module))
    assert known.returncode == 0 and "no new errors (1 known" in known.stdout

    module.write_text(FIXED)
    fixed = _check("--baseline", str(baseline), str(module))
    assert fixed.returncode == 1
    assert "1 baseline error(s) are fixed" in fixed.stdout and "--update" in fixed.stdout


def test_an_error_that_moves_to_another_line_keeps_its_baseline_entry():
    before = 'billing/services.py:10: error: Incompatible return value type (got "str | None", expected "str")  [return-value]'
    after = before.replace(":10:", ":42:")
    assert error_keys(before) == error_keys(after)
    assert list(error_keys(after)) == [
        'billing/services.py: [return-value] Incompatible return value type (got "str | None", expected "str")'
    ]


def test_notes_and_the_summary_are_not_errors():
    output = "conversations/x.py:3: note: Possible overload variants:\nFound 1 error in 1 file (checked 2 source files)"
    assert error_keys(output) == {}
