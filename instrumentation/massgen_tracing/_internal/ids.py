"""Span and trace ids that the program's `random.seed()` cannot repeat, without a system call per id.

The SDK's `RandomIdGenerator` draws from the `random` module's shared generator: a program that calls
`random.seed(0)` (tests, simulations, agents made reproducible) gets the same trace ids on every run, and
backends merge those runs into one trace. OpenInference avoids that with `random.SystemRandom`, which
reads `os.urandom` for every id: a system call that also releases the GIL, so on a busy program every
span start hands the interpreter to whichever other thread is waiting (the exporter's, the live view's)
and waits to get it back. Our generator is a `random.Random` of its own, seeded from `os.urandom` once,
and again in every forked child (which would otherwise repeat its parent's ids).
"""

from __future__ import annotations

import os
import random
from typing import TypeVar

from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import INVALID_SPAN_ID, INVALID_TRACE_ID


class PrivateIdGenerator(IdGenerator):
    """Random ids from a generator only we draw from (see the module docstring)."""

    def __init__(self) -> None:
        self._random = random.Random()
        self.reseed()

    def reseed(self) -> None:
        self._random.seed(os.urandom(32))

    def generate_span_id(self) -> int:
        bits = self._random.getrandbits
        while (span_id := bits(64)) == INVALID_SPAN_ID:
            continue
        return span_id

    def generate_trace_id(self) -> int:
        bits = self._random.getrandbits
        while (trace_id := bits(128)) == INVALID_TRACE_ID:
            continue
        return trace_id


IDS = PrivateIdGenerator()
_G = TypeVar("_G")


def ids_for(generator: _G) -> _G | PrivateIdGenerator:
    """The generator our spans use under a provider with `generator`: ours in place of the SDK's default
    one, a provider's own (AWS X-Ray's, say) as it is."""
    return IDS if type(generator) is RandomIdGenerator else generator

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=IDS.reseed)
