"""Ship the activation .pth file in both normal and editable wheels.

Hatchling's `force-include` only applies to standard wheels; editable installs need the hook.
"""

from __future__ import annotations

from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class ActivationPthHook(BuildHookInterface):  # type: ignore[type-arg]  # hatchling's generic is untyped
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        key = "force_include_editable" if version == "editable" else "force_include"
        build_data.setdefault(key, {})["instrumentation/massgen_tracing.pth"] = "massgen_tracing.pth"
