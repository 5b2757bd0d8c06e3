"""Recorded export status per model, written by `bench/export_all_models.py` (not guessed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

STATUS_FILE = Path(__file__).with_name("status.json")


def model_status() -> dict[str, dict[str, Any]]:
    if not STATUS_FILE.exists():
        return {}
    data = json.loads(STATUS_FILE.read_text())
    return {row["model"]: row for row in data.get("models", [])}
