"""One real Phoenix server for the whole session (it takes ~20 s to start), on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from support.phoenix import EXECUTABLE, INSTALL_HINT, Phoenix, run_phoenix


@pytest.fixture(scope="session")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Phoenix]:
    # A missing Phoenix is a broken setup, not an optional extra: fail instead of skipping, or the
    # end-to-end check silently disappears from every run that forgot the install step.
    if not EXECUTABLE.exists():
        pytest.fail(INSTALL_HINT, pytrace=False)
    with ExitStack() as stack:
        try:
            running = stack.enter_context(run_phoenix(tmp_path_factory.mktemp("phoenix")))
        except RuntimeError as exc:  # the message carries Phoenix's own log; our polling loop is noise
            pytest.fail(str(exc), pytrace=False)
        yield running
