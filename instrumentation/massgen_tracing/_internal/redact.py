"""Secret masking for captured content, applied before any sink or exporter sees a span.

Patterns are named so a masked value says what it was (`[REDACTED:openai_key]`); see docs/redaction.md.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from typing import Any

# Where a key may begin: a word boundary, or right after an escape sequence. JSON and repr() write a newline
# or tab as `\n` / `\t` and other characters as `\u00e9` / `\x1b`: in `"Observation:\nsk-ant-..."` the
# key follows the letter `n`, where `\b` finds no boundary, and such keys went out unmasked (a tool
# output serialised into every later model call's input).
KEY_START = r"(?:\b|(?<=\\[ntrfbv0])|(?<=\\u[0-9a-fA-F]{4})|(?<=\\x[0-9a-fA-F]{2}))"

# (name, pattern). Order matters only for overlaps: more specific shapes first.
DEFAULT_PATTERNS: tuple[tuple[str, str], ...] = (
    ("private_key", r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"),
    ("anthropic_key", KEY_START + r"sk-ant-[A-Za-z0-9_\-]{20,}"),
    ("openai_key", KEY_START + r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}"),
    ("huggingface_token", KEY_START + r"hf_[A-Za-z0-9]{30,}"),
    ("google_api_key", KEY_START + r"AIza[0-9A-Za-z_\-]{35}"),
    ("aws_access_key_id", KEY_START + r"(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    ("github_token", KEY_START + r"(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
    ("slack_token", KEY_START + r"xox[abprs]-[A-Za-z0-9\-]{10,}"),
    ("groq_key", KEY_START + r"gsk_[A-Za-z0-9]{20,}"),
    ("xai_key", KEY_START + r"xai-[A-Za-z0-9]{20,}"),
    ("jwt", KEY_START + r"eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
    ("bearer_token", r"(?<=(?i:bearer) )[A-Za-z0-9\-._~+/]{12,}=*"),
)

# `key = value` / `"key": "value"` for secret-sounding names: only the value is masked.
_ASSIGN = re.compile(
    r"(?i)((?:api[_-]?key|secret[_-]?key|client[_-]?secret|access[_-]?token|auth[_-]?token|password|passwd)"
    r"[\"']?\s*[:=]\s*[\"']?)([^\s\"',}]{6,})"
)
# The same pattern without IGNORECASE, run on the lower-cased text: ~10x faster (sre can use its
# first-character prefilter only when case-sensitive). Positions map back when lower() kept the length.
_ASSIGN_LOWER = re.compile(_ASSIGN.pattern.replace("(?i)", "", 1))
_MIN_LEN = 12  # no supported secret shape is shorter; skipping short strings keeps the hot path cheap
# Results are remembered by content: OpenInference serialises the same message history, tool schemas
# and invocation parameters into span after span and run after run (LangGraph ReAct loop: 115 strings
# per run, 46 distinct, 77 % seen in the run before), and a dict lookup costs a hash (~1 ns/char)
# where a scan costs ~25 ns/char. Bounded; emptied whole when full. A str subclass is never cached
# (it may define its own equality).
_CACHE_ENTRIES = 2048
_CACHE_CHARS = 4_000_000
_CACHE_ITEM_CHARS = 256_000


# Literal fragments every match of a pattern contains: a pattern's regex runs only when one is present,
# which keeps ordinary text (most content) at a few substring scans instead of a regex pass per shape.
_LITERALS: dict[str, tuple[str, ...]] = {
    "private_key": ("PRIVATE KEY",),
    "anthropic_key": ("sk-ant-",),
    "openai_key": ("sk-",),
    "huggingface_token": ("hf_",),
    "google_api_key": ("AIza",),
    "aws_access_key_id": ("AKIA", "ASIA"),
    "github_token": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    "slack_token": ("xox",),
    "groq_key": ("gsk_",),
    "xai_key": ("xai-",),
    "jwt": ("eyJ",),
}
_LOWER_LITERALS = {"bearer_token": ("bearer ",)}
# Stems `_ASSIGN` needs (`token`/`key` alone would send most prose through the regex).
_ASSIGN_WORDS = ("api_key", "api-key", "apikey", "secret", "access_token", "access-token", "accesstoken",
                 "auth_token", "auth-token", "authtoken", "passw")
# Whether any default shape *could* match, from scans sre and str.find do fast: a literal, or a
# pattern that starts with one, runs at ~1.5 ns/char, where one regex of branches that each start with
# a different character runs at ~9 ns/char (the previous two such prefilters: ~20 ns/char together, a
# fifth of an instant-model ReAct run's tracing cost). Rare letters gate the scans behind them.
_SK = re.compile(r"sk[-_]")  # sk- (OpenAI, Anthropic), gsk_ (Groq)
_GH = re.compile(r"gh[pousr]_")
_AWS_GOOGLE = re.compile(r"A(?:Iza|KIA|SIA)")
_X = re.compile(r"x(?:ai-|ox)")
_API_KEY = re.compile(r"api[_-]?key")
_TOKEN = re.compile(r"token(?:(?<=access_token)|(?<=access-token)|(?<=accesstoken)"
                    r"|(?<=auth_token)|(?<=auth-token)|(?<=authtoken))")


# Streamed text arrives in pieces a tokenizer cut anywhere, a key too ("sk-pro", "j-A1b2", ...): each
# piece alone matches nothing. `stable_end` says how much of the text so far can be shown.
_HOLD_WORDS = 3  # `password = value`: the widest default shape spans three words
_HOLD_MAX = 16_384  # a held tail this long without three word breaks is not prose: show all but...
_HOLD_KEEP = 4_096  # ...this much (longer than any token shape)


def stable_end(text: str) -> int:
    """How much of streamed `text` can be shown now: all but its last three whitespace-separated words
    (the last maybe incomplete or empty) and an unfinished private-key block. The next pieces may turn
    those into a secret (`Bearer` + a token, `api_key = value`, the rest of a key); masked together
    later, they are masked whole."""
    j = len(text)
    while j and not text[j - 1].isspace():
        j -= 1
    for _ in range(_HOLD_WORDS - 1):
        while j and text[j - 1].isspace():
            j -= 1
        while j and not text[j - 1].isspace():
            j -= 1
    begin = text.rfind("-----BEGIN")
    if begin != -1 and text.find("-----END", begin) == -1:
        j = min(j, begin)
    if j == 0 and len(text) > _HOLD_MAX:
        j = len(text) - _HOLD_KEEP
    return j


def _may_hold_secret(text: str) -> bool:
    """False only when no default shape can match `text` (every shape needs one of these fragments)."""
    if _SK.search(text) or "hf_" in text or _GH.search(text) or "github_pat_" in text or "PRIVATE KEY" in text:
        return True
    if ("A" in text and _AWS_GOOGLE.search(text)) or ("x" in text and _X.search(text)):
        return True
    if "J" in text and "eyJ" in text:
        return True
    low = text.lower()  # the assignment words and `Bearer` in any case
    return bool("secret" in low or "passw" in low or "bearer " in low or _API_KEY.search(low)
                or _TOKEN.search(low))


def _mask_assignments(text: str, low: str) -> str:
    if len(low) != len(text):  # a few Unicode letters change length when lower-cased
        return _ASSIGN.sub(lambda m: m.group(1) + "[REDACTED:secret_assignment]", text)
    parts: list[str] = []
    last = 0
    for m in _ASSIGN_LOWER.finditer(low):
        start, end = m.span(2)
        parts.append(text[last:start])
        parts.append("[REDACTED:secret_assignment]")
        last = end
    if not parts:
        return text
    parts.append(text[last:])
    return "".join(parts)


class Redactor:
    """Masks secrets in strings, lists of strings and attribute mappings."""

    def __init__(self, extra: Iterable[re.Pattern[str] | str] = (), *, defaults: bool = True):
        self._shapes: list[tuple[str, tuple[str, ...], bool, re.Pattern[str]]] = []
        if defaults:
            for name, pat in DEFAULT_PATTERNS:
                lower = name in _LOWER_LITERALS
                lits = _LOWER_LITERALS[name] if lower else _LITERALS[name]
                self._shapes.append((name, lits, lower, re.compile(pat)))
        self._assignments = defaults
        self._extra = [p if isinstance(p, re.Pattern) else re.compile(p) for p in extra]
        self._fast = defaults and not self._extra  # the prefilters cover exactly the default shapes
        self._cache: dict[str, str] = {}  # text -> its masked form, or "" when nothing was masked
        self._cached_chars = 0

    def redact(self, text: str) -> str:
        """`text` with every secret masked; the very same object when nothing was masked."""
        n = len(text)
        if n < _MIN_LEN:
            return text
        if type(text) is not str or n > _CACHE_ITEM_CHARS:
            return self._scan(text)
        cache = self._cache
        hit = cache.get(text)
        if hit is None:
            masked = self._scan(text)
            if len(cache) >= _CACHE_ENTRIES or self._cached_chars > _CACHE_CHARS:
                # Several sink and program threads may get here at once: clear() and the count are each
                # atomic under the GIL, and a count off by a few strings only moves the next clearing.
                cache.clear()
                self._cached_chars = 0
            cache[text] = "" if masked is text else masked  # a masked form is never empty
            self._cached_chars += n
            return masked
        return hit or text  # the caller's own object when nothing is masked, as without the cache

    def _scan(self, text: str) -> str:
        if self._fast and not _may_hold_secret(text):
            return text  # no fragment any default shape needs: nothing to mask
        low: str | None = None
        for name, lits, lower, pat in self._shapes:
            if lower:
                if low is None:
                    low = text.lower()
                hay = low
            else:
                hay = text
            if any(lit in hay for lit in lits):
                text = pat.sub(f"[REDACTED:{name}]", text)
                low = None
        if self._assignments:
            if low is None:
                low = text.lower()
            if ("=" in text or ":" in text) and any(w in low for w in _ASSIGN_WORDS):
                text = _mask_assignments(text, low)
        for pat in self._extra:
            text = pat.sub("[REDACTED]", text)
        return text

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where in `text` the secrets `redact` would mask are: (start, end) of each, its label included
        (`Bearer `, `password = `), overlapping spans not merged."""
        if len(text) < _MIN_LEN or (self._fast and not _may_hold_secret(text)):
            return []
        found: list[tuple[int, int]] = []
        for name, _, _, pat in self._shapes:
            for m in pat.finditer(text):
                # The bearer shape matches the token only (its label is a lookbehind): the label counts.
                found.append((max(0, m.start() - 7) if name == "bearer_token" else m.start(), m.end()))
        if self._assignments:
            found.extend((m.start(), m.end()) for m in _ASSIGN.finditer(text))
        for pat in self._extra:
            found.extend((m.start(), m.end()) for m in pat.finditer(text))
        return found

    def value(self, v: Any) -> Any:
        """`v` masked: a string, or a list/tuple of strings. Unchanged values come back as the same object."""
        if isinstance(v, str):
            return self.redact(v)
        if isinstance(v, (tuple, list)) and v and isinstance(v[0], str):
            out: list[Any] | None = None  # a copy only once something is masked
            for i, x in enumerate(v):
                if isinstance(x, str) and len(x) >= _MIN_LEN and (m := self.redact(x)) is not x:
                    if out is None:
                        out = list(v)
                    out[i] = m
            if out is not None:
                return type(v)(out)
        return v

    def mapping(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Redact a plain dict in place and return it (strings seen before come from the cache)."""
        self.mapping_over(attrs, sys.maxsize)
        return attrs

    def mapping_over(self, attrs: dict[str, Any], limit: int) -> bool:
        """`mapping`, and whether a string value (or a str subclass's) is over `limit` characters once
        masked: the live processor learns in the same pass whether an end record must cut any."""
        changed: list[tuple[str, Any]] = []
        redact, value = self.redact, self.value
        over = False
        for k, v in attrs.items():
            if type(v) is str:  # the common case, inline: most attribute strings are short
                if len(v) < _MIN_LEN:
                    if len(v) > limit:
                        over = True
                    continue
                nv = redact(v)
            elif type(v) is tuple or type(v) is list:
                nv = value(v)
                if nv is not v:
                    changed.append((k, nv))
                continue
            elif isinstance(v, str):  # a subclass: smolagents' AgentText carries every tool result
                nv = redact(v) if len(v) >= _MIN_LEN else v
            else:
                continue
            if len(nv) > limit:
                over = True
            if nv is not v:
                changed.append((k, nv))
        for k, nv in changed:
            attrs[k] = nv
        return over
