"""Regenerates the handbook tables that come from registries: `python -m massgen_tracing._internal.docgen`.

Each table sits between `<!-- generated:NAME -->` and `<!-- /generated -->` in a docs/ file; a test
fails when a registry changed and the docs did not.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

from massgen_tracing._internal import convention, redact, settings


def _redaction_table() -> str:
    rows = ["| name | pattern |", "|---|---|"]
    rows += [f"| `{name}` | `{pat.replace(redact.KEY_START, '⟨start⟩').replace('|', '&#124;')}` |"
             for name, pat in redact.DEFAULT_PATTERNS]
    rows.append(f"| `secret_assignment` | `{redact._ASSIGN.pattern.replace('|', '&#124;')}` (value only) |")
    start = redact.KEY_START.replace("|", "&#124;")
    rows.append("")
    rows.append(f"`⟨start⟩` is `{start}`: a word boundary, or the end of an escape sequence (`\\n`, `\\t`, "
                "`\\u00e9`, `\\x1b`), which is how JSON and `repr()` write a key that follows a newline or tab.")
    return "\n".join(rows) + "\n"


BLOCKS: dict[str, tuple[str, Callable[[], str]]] = {
    "settings": ("configuration.md", settings.markdown_table),
    "convention": ("convention.md", convention.markdown_reference),
    "redaction": ("redaction.md", _redaction_table),
}


def render(text: str) -> str:
    for name, (_, fn) in BLOCKS.items():
        pattern = re.compile(rf"(<!-- generated:{name} -->\n).*?(<!-- /generated -->)", re.S)
        text = pattern.sub(lambda m, fn=fn: m.group(1) + fn() + m.group(2), text)  # type: ignore[misc]
    return text


def main(docs: str = "docs") -> int:
    changed = 0
    for file in sorted({f for f, _ in BLOCKS.values()}):
        path = Path(docs) / file
        old = path.read_text(encoding="utf-8")
        new = render(old)
        if new != old:
            path.write_text(new, encoding="utf-8")
            changed += 1
            print(f"updated {path}")
    return 0 if changed >= 0 else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
