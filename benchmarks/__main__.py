"""`make bench`: run every benchmark module (or --only NAME ...) and write JSON + markdown.

Runs under `chatbot_saas.devservices exec`, so DATABASE_URL/REDIS_URL point at the embedded
services. Modules are discovered: any benchmarks/<name>.py with `run(args)` and `TITLE`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from pathlib import Path

import django

from .common import RESULTS_DIR, write_results

SKIP = {"common", "corpus"}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="make bench")
    parser.add_argument("--only", nargs="*", default=None, help="benchmark module names")
    parser.add_argument("--size", default="100k", choices=["small", "100k", "1m"], help="data size where it applies")
    parser.add_argument("--quick", action="store_true", help="smaller runs, for a smoke check")
    parser.add_argument("--strategies", action="store_true", help="retrieval: compare index types (minutes)")
    parser.add_argument("--sizes", default=None, help="streaming: comma-separated N, e.g. 100,1000")
    parser.add_argument("--server", default="daphne", choices=["daphne", "uvicorn"], help="streaming: ASGI server")
    parser.add_argument("--workers", type=int, default=1, help="streaming: server processes on the port (WEB_WORKERS)")
    parser.add_argument(
        "--client-procs", type=int, default=1, help="streaming: benchmark client processes (visitors split over them)"
    )
    parser.add_argument(
        "--bare-only", action="store_true", help="streaming: only the bare consumer (server comparison)"
    )
    parser.add_argument(
        "--fake-llm", default="asyncio", choices=["asyncio", "threaded"], help="streaming: fake provider server"
    )
    parser.add_argument(
        "--calibrate", action="store_true", help="quality: grid-search the relevance gate on the calibration half"
    )
    parser.add_argument("--duration", type=float, default=60.0, help="capacity: seconds of arrivals per rate")
    parser.add_argument("--rates", default=None, help="capacity: comma-separated answers/s to try, e.g. 4,8,16")
    parser.add_argument("--before", default=None, help="capacity: git ref of the code to compare (default: main)")
    parser.add_argument("--messages", type=int, default=None, help="insights: messages to build (default 1M)")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbot_saas.settings")
    django.setup()
    names = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name not in SKIP)
    if args.only:
        names = [n for n in names if n in args.only]
    summary = []
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        if not hasattr(module, "run"):
            continue
        print(f"== {name}: {module.TITLE}", flush=True)
        rows = module.run(args)
        table = write_results(name, module.TITLE, rows)
        print(table, flush=True)
        summary.append(table)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "summary.md").write_text("# Benchmark results\n\n" + "\n".join(summary))
    print(f"results in {RESULTS_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
