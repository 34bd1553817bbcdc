"""mypy on the apps, against a baseline that only shrinks (run by `make lint`).

The apps were written without a type checker, so mypy starts out with known errors. They are
listed in scripts/mypy_baseline.txt as `file: [code] message`, without line numbers, so that
editing a file does not move its old errors out of the baseline. A check:
  - fails when mypy reports an error that the baseline does not list (a new one), naming it;
  - fails when a listed error is gone, so the baseline is shrunk in the same commit as the fix
    (`python scripts/mypy_baseline.py --update`);
  - passes otherwise.

`--update` rewrites the baseline and refuses to let it grow; moving code to another file changes
its errors' keys, and `--update --allow-growth` accepts that (the diff of the baseline shows it).

  python scripts/mypy_baseline.py [--baseline FILE] [--update [--allow-growth]] [PATH ...]
PATHs default to the `files` of [tool.mypy] in pyproject.toml.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
BASELINE = BASE_DIR / "scripts" / "mypy_baseline.txt"
HEADER = "# mypy errors known when mypy was enabled; only ever remove lines (scripts/mypy_baseline.py).\n"
ERROR_LINE = re.compile(r"^(?P<file>[^:\s]+\.py):\d+(?::\d+)?: error: (?P<message>.*?)(?:  \[(?P<code>[a-z0-9-]+)\])?$")
# "defined on line 42" and the like would change with every edit above the error.
LINE_REFERENCE = re.compile(r"\bline \d+\b")


def error_keys(mypy_output: str) -> Counter[str]:
    """The errors in mypy's output as `file: [code] message`, counted (one file may repeat one)."""
    keys: Counter[str] = Counter()
    for line in mypy_output.splitlines():
        match = ERROR_LINE.match(line.strip())
        if match:
            message = LINE_REFERENCE.sub("line N", match["message"])
            keys[f"{match['file']}: [{match['code'] or 'misc'}] {message}"] += 1
    return keys


def read_baseline(path: Path) -> Counter[str]:
    if not path.exists():
        return Counter()
    lines = path.read_text().splitlines()
    return Counter(line for line in lines if line.strip() and not line.startswith("#"))


def write_baseline(path: Path, keys: Counter[str]) -> None:
    path.write_text(HEADER + "".join(f"{key}\n" for key in sorted(keys.elements())))


def run_mypy(paths: list[str]) -> str:
    # The config (plugins, files, cache) is [tool.mypy] in pyproject.toml.
    command = [sys.executable, "-m", "mypy", "--no-error-summary", "--hide-error-context", *paths]
    result = subprocess.run(command, cwd=BASE_DIR, capture_output=True, text=True, check=False)
    if result.returncode not in (0, 1) or (result.returncode == 1 and not error_keys(result.stdout)):
        # 2 (or 1 without error lines) is mypy itself failing: bad config, a crash, a syntax error.
        raise SystemExit(f"mypy did not run:\n{result.stdout}{result.stderr}")
    return result.stdout


def check(baseline: Counter[str], current: Counter[str]) -> tuple[int, list[str]]:
    """(exit code, lines to print) for the current errors against the baseline."""
    new = current - baseline
    fixed = baseline - current
    if new:
        lines = [f"mypy: {sum(new.values())} new error(s) not in the baseline:"]
        lines += [f"  {key}" for key in sorted(new.elements())]
        lines.append("Fix them (run `.venv/bin/mypy` for line numbers); the baseline does not grow.")
        return 1, lines
    if fixed:
        lines = [f"mypy: {sum(fixed.values())} baseline error(s) are fixed:"]
        lines += [f"  {key}" for key in sorted(fixed.elements())]
        lines.append("Shrink the baseline in the same commit: python scripts/mypy_baseline.py --update")
        return 1, lines
    return 0, [f"mypy: no new errors ({sum(current.values())} known, listed in the baseline)"]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*")
    parser.add_argument("--baseline", type=Path, default=BASELINE)
    parser.add_argument("--update", action="store_true", help="rewrite the baseline (it may only shrink)")
    parser.add_argument("--allow-growth", action="store_true", help="with --update: accept new entries")
    args = parser.parse_args(argv)

    baseline = read_baseline(args.baseline)
    current = error_keys(run_mypy(args.paths))
    if args.update:
        new = current - baseline
        if new and not args.allow_growth:
            print(f"refusing to add {sum(new.values())} error(s) to the baseline; fix them, or pass --allow-growth")
            print("\n".join(f"  {key}" for key in sorted(new.elements())))
            return 1
        write_baseline(args.baseline, current)
        print(f"baseline: {sum(current.values())} error(s) (was {sum(baseline.values())})")
        return 0
    code, lines = check(baseline, current)
    print("\n".join(lines))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
