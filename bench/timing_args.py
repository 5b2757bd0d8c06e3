"""What the interleaved latency benches share: their command line, the bench config, and
keeping the other models' saved rows when a subset is re-run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edgekit.bench.collectors import BenchConfig


def timing_parser(description: str | None, models: tuple[str, ...]) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--models", default=",".join(models))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--update-readme", action="store_true")
    ap.add_argument("--readme-only", action="store_true", help="Re-render from saved results.")
    return ap


def timing_config(args: argparse.Namespace) -> BenchConfig:
    return BenchConfig(threads=args.threads, runs=30, min_seconds=0.5, rounds=args.rounds,
                       retries=0)


def other_models_rows(results: Path, models: list[str]) -> list[dict[str, Any]]:
    """Saved rows of models not being re-run."""
    if not results.is_file():
        return []
    return [r for r in json.loads(results.read_text())["rows"] if r["model"] not in models]
