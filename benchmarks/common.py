"""Shared helpers for benchmarks: percentiles and result files.

Every benchmark module exposes `run(args: argparse.Namespace) -> list[dict]` (one dict per row)
and `TITLE`. Results go to benchmarks/results/<name>.json and a markdown table in
benchmarks/results/summary.md. Benchmarks report ratios against a baseline measured in the same
run; tests never assert timings.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def markdown_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no rows)\n"
    headers = list(rows[0].keys())
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(h)) for h in headers) + " |")
    return "\n".join(lines) + "\n"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def write_results(name: str, title: str, rows: list[dict[str, Any]]) -> str:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(rows, indent=2, default=str))
    table = f"## {title}\n\n{markdown_table(rows)}"
    (RESULTS_DIR / f"{name}.md").write_text(table)
    return table
