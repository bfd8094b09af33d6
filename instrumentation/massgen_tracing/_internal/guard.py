"""One guard for every place our code runs inside the host program.

Our own exceptions are logged once per site and swallowed; under the test suite
(`MASSGEN_TRACING_STRICT=1`, set by tests/conftest.py) they re-raise so bugs cannot hide.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

logger = logging.getLogger("massgen_tracing")
_reported: set[str] = set()
_lock = threading.Lock()
F = TypeVar("F", bound=Callable[..., Any])


def strict() -> bool:
    # Read each time (not cached) so a test can switch it; this is one dict lookup.
    return os.environ.get("MASSGEN_TRACING_STRICT") == "1"


def tell(message: str) -> None:
    """One line for the user on stderr; nothing when there is no stderr (`2>&-` makes it None, and
    `print(file=None)` would put our line into the program's stdout). Never raises."""
    stream = sys.stderr
    if stream is None:
        return
    try:
        stream.write(message + "\n")
        stream.flush()
    except Exception:  # noqa: BLE001  # a closed or broken stderr: nobody to tell
        pass


def report_internal_error(site: str, exc: BaseException) -> None:
    """Log our own failure once per site; never raises."""
    try:
        with _lock:
            first = site not in _reported
            _reported.add(site)
        if first:
            logger.warning("massgen-tracing: internal error in %s (tracing continues): %r", site, exc,
                           exc_info=exc)
    except Exception:  # noqa: BLE001  # logging itself failed: nothing more we can safely do
        pass


class internal:  # lower-case: used like a function, `with internal("site"):`
    """Wrap a block of *our* code (never the user's call) so it cannot raise into the host.

    A class rather than a `@contextmanager` generator: it guards every span start and end, and the
    generator machinery cost ~4x as much per use.
    """

    __slots__ = ("site",)

    def __init__(self, site: str) -> None:
        self.site = site

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False  # nothing raised, or KeyboardInterrupt/SystemExit: not ours to swallow
        if strict():
            return False
        report_internal_error(self.site, exc)
        return True  # the whole point: our errors never reach the host


def guarded(site: str, default: Any = None) -> Callable[[F], F]:
    """Decorator form of `internal`: returns `default` when our code fails."""

    def deco(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # see `internal`
                if strict():
                    raise
                report_internal_error(site, exc)
                return default

        return wrapper  # type: ignore[return-value]  # same signature as fn

    return deco


def weak_hook(method: Callable[[], object], site: str) -> Callable[[], None]:
    """`method` as a guarded callback that does not keep its object alive: for `os.register_at_fork`,
    whose hooks can never be unregistered."""
    ref = weakref.WeakMethod(method)  # a bound method, as WeakMethod needs

    def call() -> None:
        bound = ref()
        if bound is not None:
            with internal(site):
                bound()

    return call
