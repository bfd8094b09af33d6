"""Imported by the installed `massgen_tracing.pth` when MASSGEN_TRACING is on, at interpreter start.

It only registers post-import hooks: tracing is configured the moment a supported framework finishes
importing, so start-up stays cheap and a host that installs its own provider first is joined, not replaced.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

# Module whose import completing means the framework can be instrumented safely (fully initialised).
_TRIGGERS = {"langgraph": "langgraph.pregel", "smolagents": "smolagents"}
_done: set[str] = set()


def _activate(framework: str) -> None:
    if framework in _done:
        return
    _done.add(framework)
    try:
        from massgen_tracing._internal import setup

        state = setup.current()
        if state is None:
            state = setup.configure(instrument=False)
        if state is None:  # OTEL_SDK_DISABLED
            return
        if framework in state.settings["frameworks"]:
            setup.instrument_frameworks([framework], state.provider)
    except Exception as exc:  # activation must never break the host's import
        from massgen_tracing._internal.guard import report_internal_error, strict

        if strict():
            raise
        report_internal_error(f"activation of {framework}", exc)


class _HookLoader:
    """Delegates to the real loader and fires our hook once the module has fully executed."""

    def __init__(self, loader: Any, framework: str):
        self._loader = loader
        self._framework = framework

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        try:
            self._loader.exec_module(module)
        finally:
            if getattr(module, "__spec__", None) is not None:
                module.__spec__.loader = self._loader  # leave no trace of us on the module
        _activate(self._framework)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class _PostImportFinder:
    """A meta-path finder that only watches the trigger modules (wrapt's version costs ~80 ms to import)."""

    def __init__(self) -> None:
        self._busy: set[str] = set()

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        framework = _BY_MODULE.get(fullname)
        if framework is None or fullname in self._busy:
            return None
        self._busy.add(fullname)
        try:
            spec = importlib.util.find_spec(fullname)
        except (ImportError, ValueError):
            return None
        finally:
            self._busy.discard(fullname)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _HookLoader(spec.loader, framework)  # type: ignore[assignment]  # duck-typed Loader
        return spec

    def invalidate_caches(self) -> None:
        pass


_BY_MODULE = {module: fw for fw, module in _TRIGGERS.items()}


def _install() -> None:
    for framework, module in _TRIGGERS.items():
        if module in sys.modules:  # imported before us (e.g. bootstrap imported late): act now
            _activate(framework)
    sys.meta_path.insert(0, _PostImportFinder())


_install()
