"""Replace a method on a class and on every subclass that defines its own, now and later; undo it all.

Subclasses created after `instrument()` are caught through a hooked `__init_subclass__` on the base.
"""

from __future__ import annotations

import functools
import types
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from massgen_tracing._internal.guard import internal

# A factory receives the original function and returns its replacement.
Factory = Callable[[Callable[..., Any]], Callable[..., Any]]
_MARK = "__massgen_tracing_original__"


def _subclasses(base: type) -> Iterator[type]:
    seen: set[type] = set()
    stack = [base]
    while stack:
        cls = stack.pop()
        if cls in seen:
            continue
        seen.add(cls)
        yield cls
        stack.extend(cls.__subclasses__())


class Patcher:
    """Remembers every replacement so `restore()` puts the exact originals back."""

    def __init__(self) -> None:
        # weakref: classes created while instrumented (a user's Model per test, say) may be collected.
        self._methods: list[tuple[weakref.ref[type], str, Any]] = []
        self._init_subclass: list[tuple[type, Any]] = []
        self._attributes: list[tuple[Any, str, Any]] = []

    def patch_tree(self, base: type, factories: Mapping[str, Factory]) -> None:
        """Patch `base` and each existing subclass that defines one of the methods itself, and any
        subclass defined from now on."""
        for cls in _subclasses(base):
            self.patch_class(cls, factories)
        self._hook_init_subclass(base, factories)

    def patch_class(self, cls: type, factories: Mapping[str, Factory]) -> None:
        for name, factory in factories.items():
            original = cls.__dict__.get(name)
            # Only plain functions: a descriptor someone else installed is left alone rather than
            # called with the wrong binding.
            if not isinstance(original, types.FunctionType) or hasattr(original, _MARK):
                continue
            replacement = functools.wraps(original)(factory(original))
            setattr(replacement, _MARK, original)
            setattr(cls, name, replacement)
            self._methods.append((weakref.ref(cls), name, original))

    def set_attribute(self, owner: Any, name: str, value: Any) -> None:
        """Replace a module or class attribute (restored by `restore`)."""
        self._attributes.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    def _hook_init_subclass(self, base: type, factories: Mapping[str, Factory]) -> None:
        own = base.__dict__.get("__init_subclass__")  # implicitly a classmethod when defined
        patcher = self

        def __init_subclass__(cls: type, /, **kwargs: Any) -> None:
            if own is not None:
                own.__get__(None, cls)(**kwargs)
            else:
                super(base, cls).__init_subclass__(**kwargs)  # type: ignore[arg-type]  # base is a variable
            with internal("smolagents.patch_subclass"):
                patcher.patch_class(cls, factories)

        base.__init_subclass__ = classmethod(__init_subclass__)  # type: ignore[assignment,method-assign]  # the hook itself
        self._init_subclass.append((base, own))

    def restore(self) -> None:
        for ref, name, original in reversed(self._methods):
            cls = ref()
            if cls is not None and getattr(cls.__dict__.get(name), _MARK, None) is original:
                setattr(cls, name, original)
        for base, own in reversed(self._init_subclass):
            if own is None:
                del base.__init_subclass__
            else:
                base.__init_subclass__ = own
        for owner, name, value in reversed(self._attributes):
            setattr(owner, name, value)
        self._methods.clear()
        self._init_subclass.clear()
        self._attributes.clear()
