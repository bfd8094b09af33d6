"""Imported by the installed `massgen_tracing.pth` when MASSGEN_TRACING is on, at interpreter start.

It only registers post-import hooks: tracing is configured the moment a supported framework finishes
importing, so start-up stays cheap and a host that installs its own provider first is joined, not replaced.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not typing's: see massgen_tracing/__init__.py
if TYPE_CHECKING:
    from typing import Any

# A framework is instrumented when the outermost import of any of its modules has finished: a hook on
# one fixed module would fire while its importers are still half-initialised (circular-import errors).
_FRAMEWORKS = ("langgraph", "smolagents")
# What the .pth line and settings.py accept; repeated here so that this module imports nothing of ours.
_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off")
_done: set[str] = set()


def _framework_of(fullname: str) -> str | None:
    for fw in _FRAMEWORKS:
        if fw not in _done and (fullname == fw or fullname.startswith(fw + ".")):
            return fw
    return None


def _still_importing(framework: str, just_loaded: str) -> bool:
    prefix = framework + "."
    for name, module in list(sys.modules.items()):
        # The module whose exec_module we are in is still flagged as initialising by importlib.
        if name != just_loaded and (name == framework or name.startswith(prefix)):
            spec = getattr(module, "__spec__", None)
            if spec is not None and getattr(spec, "_initializing", False):
                return True
    return False


def _on_module_loaded(framework: str, just_loaded: str = "") -> None:
    if framework not in _done and not _still_importing(framework, just_loaded):
        _activate(framework)


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
        _on_module_loaded(self._framework, getattr(module, "__name__", ""))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class _PostImportFinder:
    """A meta-path finder that only watches the trigger modules (wrapt's version costs ~80 ms to import)."""

    def __init__(self) -> None:
        self._busy: set[str] = set()

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        framework = _framework_of(fullname)
        if framework is None or fullname in self._busy:
            return None
        self._busy.add(fullname)
        try:
            import importlib.util  # here, not at start-up: it pulls in contextlib (5 ms of every start)

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


def _install() -> None:
    raw = os.environ.get("MASSGEN_TRACING", "")
    if raw.strip().lower() not in _ON:
        # The .pth file loads us for any value that does not say "off": one that says neither gets the
        # same one-line message as every other bad setting, and tracing stays off.
        if sys.stderr is not None:  # None under `2>&-`: then nobody to tell (never the program's stdout)
            try:  # noqa: SIM105  # contextlib is one more import on every start-up
                sys.stderr.write(f"massgen-tracing: MASSGEN_TRACING={raw!r} is not valid: expected one of "
                                 f"{', '.join(_ON)} (on) or {', '.join(_OFF)} (off); using off.\n")
            except Exception:  # noqa: BLE001  # a broken stderr must not break the interpreter start
                pass
        return
    for framework in _FRAMEWORKS:
        if framework in sys.modules:  # imported before us (e.g. bootstrap imported late): act now
            _on_module_loaded(framework)
    sys.meta_path.insert(0, _PostImportFinder())


_install()
