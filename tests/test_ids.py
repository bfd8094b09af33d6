"""Our span and trace ids: a generator of our own, unaffected by the program's `random.seed()`, reseeded in
forked children."""

from __future__ import annotations

import os
import random

import pytest
from opentelemetry.trace import INVALID_SPAN_ID, INVALID_TRACE_ID

from massgen_tracing._internal.ids import IDS, PrivateIdGenerator


def test_ids_do_not_follow_the_random_modules_seed() -> None:
    draws = []
    for _ in range(2):
        random.seed(0)
        draws.append((IDS.generate_trace_id(), IDS.generate_span_id()))
    assert draws[0] != draws[1]
    trace_id, span_id = draws[0]
    assert 0 < trace_id < 2**128 and 0 < span_id < 2**64


def test_two_generators_do_not_repeat_each_other() -> None:
    a, b = PrivateIdGenerator(), PrivateIdGenerator()
    assert [a.generate_span_id() for _ in range(3)] != [b.generate_span_id() for _ in range(3)]


def test_an_invalid_id_is_never_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    gen = PrivateIdGenerator()
    draws = iter([INVALID_SPAN_ID, 5, INVALID_TRACE_ID, 6])
    monkeypatch.setattr(gen._random, "getrandbits", lambda bits: next(draws))
    assert (gen.generate_span_id(), gen.generate_trace_id()) == (5, 6)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork: POSIX only")
def test_a_forked_child_draws_other_ids_than_its_parent() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, to the parent
        try:
            os.write(write, str(IDS.generate_span_id()).encode())
        finally:
            os._exit(0)
    os.close(write)
    parent_next = IDS.generate_span_id()
    with os.fdopen(read) as pipe:
        child_next = int(pipe.read())
    os.waitpid(pid, 0)
    assert child_next != parent_next, "the child repeated its parent's ids"
