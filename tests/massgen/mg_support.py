"""Helpers shared by the MassGen tests: duration normalising, an in-memory pipeline."""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "massgen"
MASSGEN_CLI = Path(sys.executable).parent / "massgen"

_DURATION = re.compile(r"\b\d+(?:\.\d+)?(?:ms|s)\b|\b\d+m\d\ds\b")


def timeless(text: str) -> str:
    """A display line with its durations replaced by `<t>` (they vary run to run)."""
    return _DURATION.sub("<t>", text)
