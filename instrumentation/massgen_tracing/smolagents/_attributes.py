"""Attributes of each smolagents step span: the shared convention plus OpenInference's own keys.

OpenInference's smolagents attribute helpers are reused so Phoenix renders these spans natively.
"""

from __future__ import annotations

import inspect
import re
import weakref
from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any

from openinference.instrumentation import (
    TraceConfig,
    infer_llm_provider_from_host,
)

# Private helpers of the pinned openinference-instrumentation-smolagents (<0.2 in pyproject);
# tests/smolagents check that the OpenInference keys they produce are still there.
from openinference.instrumentation.smolagents import _wrappers as oi
from openinference.semconv.trace import SpanAttributes
from smolagents.agent_types import AgentType

from massgen_tracing._internal import convention as c
from massgen_tracing._internal.oi_context import context_attributes

FRAMEWORK = "smolagents"
JSON = "application/json"
TEXT = "text/plain"
MAX_STATUS_LENGTH = 1000

# Content keys that OpenInference's hide_inputs / hide_outputs must cover too (its own masking
# misses the smolagents.* ones).
_INPUT_KEYS = frozenset({c.RUN_INPUT, c.TOOL_ARGUMENTS, c.CODE, "smolagents.task", "smolagents.additional_args"})
_OUTPUT_KEYS = frozenset({c.PLAN, c.MODEL_OUTPUT, c.OBSERVATIONS, c.TOOL_RESULT, c.DELTA_TEXT, c.LOG_TEXT,
                          c.CODE_ERROR_LINE})


class Content:
    """Applies OpenInference's TraceConfig (and so `capture_content=false`) to every attribute we set.

    With nothing hidden (the default) `mask` returns its argument untouched: no per-key work.
    """

    def __init__(self, config: TraceConfig) -> None:
        self.config = config
        self.active = any(getattr(config, f.name) for f in fields(config) if f.name.startswith("hide_"))

    def mask(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not self.active:
            return attrs
        out: dict[str, Any] = {}
        for key, value in attrs.items():
            # Our content keys follow the rule of OpenInference's generic input/output keys.
            as_key = (SpanAttributes.INPUT_VALUE if key in _INPUT_KEYS
                      else SpanAttributes.OUTPUT_VALUE if key in _OUTPUT_KEYS else key)
            masked = self.config.mask(as_key, value)
            if masked is not None:
                out[key] = masked
        return out


def agent_name(agent: Any) -> str:
    return getattr(agent, "name", None) or type(agent).__name__


def model_name(model: Any) -> str:
    return getattr(model, "model_id", None) or type(model).__name__


def _writes_when_shown(value: Any) -> bool:
    """smolagents' image and audio results (not its text, a str): their `str()` writes a file."""
    return isinstance(value, AgentType) and not isinstance(value, str)


def _shown(obj: Any) -> str:
    """What JSON cannot encode, as text, except that an image or audio result is described: its `str()`
    (smolagents' `AgentType.to_string()`) writes it to a temporary file the first time, a side effect
    (and ~0.2 s for a 2000x2000 image) the program would have only because it is traced."""
    if _writes_when_shown(obj):
        path = getattr(obj, "_path", None)
        if isinstance(path, str):  # already written: its str() is that path, with nothing to write
            return path
        raw = getattr(obj, "_raw", None)  # the image it wraps (the AgentImage itself reads as 0x0)
        size, mode = getattr(raw, "size", None), getattr(raw, "mode", None)
        if isinstance(size, tuple) and len(size) == 2:
            return f"<{type(obj).__name__} {size[0]}x{size[1]}{f' {mode}' if isinstance(mode, str) else ''}>"
        rate = getattr(obj, "samplerate", None)
        return f"<{type(obj).__name__}{f' samplerate={rate}' if isinstance(rate, int) else ''}>"
    return str(obj)


def text(value: Any) -> str:
    """An attribute-safe string: str as is, anything else as JSON, never raising (`c.json_text`), and
    never writing an image or audio result to a file (`_shown`)."""
    return c.json_text(value, _shown)


def status_description(exc: BaseException) -> str:
    message = str(exc)  # empty for a bare KeyboardInterrupt: then the type alone, not "KeyboardInterrupt: "
    return (f"{type(exc).__name__}: {message}" if message else type(exc).__name__)[:MAX_STATUS_LENGTH]


def with_context(attrs: dict[str, Any]) -> dict[str, Any]:
    """Adds OpenInference context attributes (`using_session`, `using_metadata`, ...)."""
    attrs.update(context_attributes())
    return attrs


# --- run ---------------------------------------------------------------------------------------------
def run_start(agent: Any, task: Any, max_steps: int, additional_args: Any,
              given: Any = None) -> tuple[str, dict[str, Any]]:
    """`given`: a managed agent's task as its manager gave it (`task` is that, wrapped in a prompt)."""
    name = agent_name(agent)
    attrs = c.step_attributes(FRAMEWORK, "run", name, extra={c.STEP_MAX: max_steps})
    task_text = text(task)
    attrs[c.RUN_INPUT] = task_text if given is None else text(given)
    attrs[SpanAttributes.INPUT_VALUE] = task_text
    attrs[SpanAttributes.INPUT_MIME_TYPE] = TEXT
    # OpenInference's run attributes (its own wrapper reads the previous run's task; we use this one).
    attrs["smolagents.task"] = task_text
    attrs["smolagents.max_steps"] = max_steps
    attrs["smolagents.tools_names"] = list(getattr(agent, "tools", {}) or {})
    if additional_args:
        attrs["smolagents.additional_args"] = c.json_text(additional_args)
    for i, managed in enumerate((getattr(agent, "managed_agents", None) or {}).values()):
        attrs[f"smolagents.managed_agents.{i}.name"] = agent_name(managed)
        if description := getattr(managed, "description", None):
            attrs[f"smolagents.managed_agents.{i}.description"] = description
    return c.span_name(attrs), with_context(attrs)


def run_end(output: Any, input_tokens: int, output_tokens: int) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        c.GEN_AI_INPUT_TOKENS: input_tokens,
        c.GEN_AI_OUTPUT_TOKENS: output_tokens,
        SpanAttributes.LLM_TOKEN_COUNT_PROMPT: input_tokens,
        SpanAttributes.LLM_TOKEN_COUNT_COMPLETION: output_tokens,
        SpanAttributes.LLM_TOKEN_COUNT_TOTAL: input_tokens + output_tokens,
    }
    if output is not None:
        attrs[SpanAttributes.OUTPUT_VALUE] = str(output)
        attrs[SpanAttributes.OUTPUT_MIME_TYPE] = TEXT
    return attrs


# --- planning and action steps -----------------------------------------------------------------------
def planning_start(agent: Any, index: int | None, max_steps: int) -> tuple[str, dict[str, Any]]:
    name = agent_name(agent)
    attrs = c.step_attributes(FRAMEWORK, "planning", name, index=index,
                              extra={c.STEP_MAX: max_steps, c.GEN_AI_AGENT_NAME: name})
    return c.span_name(attrs), with_context(attrs)


def planning_end(planning_step: Any) -> dict[str, Any]:
    if planning_step is None:
        return {}
    plan = getattr(planning_step, "plan", None)
    attrs: dict[str, Any] = {}
    if plan is not None:
        attrs[c.PLAN] = plan
        attrs[SpanAttributes.OUTPUT_VALUE] = plan
        attrs[SpanAttributes.OUTPUT_MIME_TYPE] = TEXT
    message = getattr(planning_step, "model_output_message", None)
    if message is not None and message.content is not None:
        attrs[c.MODEL_OUTPUT] = text(message.content)
    return attrs


def action_start(agent: Any, index: int, max_steps: int) -> tuple[str, dict[str, Any]]:
    name = agent_name(agent)
    attrs = c.step_attributes(FRAMEWORK, "action", name, index=index,
                              extra={c.STEP_MAX: max_steps, c.GEN_AI_AGENT_NAME: name})
    return c.span_name(attrs), with_context(attrs)


def action_end(memory_step: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    if memory_step is None:
        return attrs
    if (output := memory_step.model_output) is not None:
        attrs[c.MODEL_OUTPUT] = text(output)
    if memory_step.tool_calls:
        attrs[c.TOOL_CALLS] = [call.name for call in memory_step.tool_calls]
    if (code := memory_step.code_action) is not None:
        attrs[c.CODE] = code
    if (observations := memory_step.observations) is not None:
        attrs[c.OBSERVATIONS] = observations
        attrs[SpanAttributes.OUTPUT_VALUE] = observations
        attrs[SpanAttributes.OUTPUT_MIME_TYPE] = TEXT
    return attrs


def decision_event(name: str, arguments: Any) -> dict[str, Any]:
    return {c.TOOL_CALL_NAME: name, c.TOOL_CALL_ARGUMENTS: text(arguments)}


_EXECUTION_LINE = re.compile(r"Code execution failed at line '(?P<line>.*?)' due to: ", re.DOTALL)
_PARSING_LINE = re.compile(r"Code parsing failed on line \d+ due to: [^\n]*\n(?P<line>[^\n]*)")


def code_error_line(exc: BaseException) -> str | None:
    """The failing statement of a CodeAgent execution or parsing error, from smolagents' message."""
    message = str(exc)
    match = _EXECUTION_LINE.search(message) or _PARSING_LINE.search(message)
    return match.group("line") if match else None


# --- model calls -------------------------------------------------------------------------------------
_MISSING = object()
_SIGNATURES: weakref.WeakKeyDictionary[Callable[..., Any], Any] = weakref.WeakKeyDictionary()


def bind(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The call's arguments by parameter name, without `self` (signatures cached per function)."""
    sig = _SIGNATURES.get(fn, _MISSING)
    if sig is _MISSING:
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            sig = None
        _SIGNATURES[fn] = sig
    if sig is not None:
        try:
            arguments = dict(sig.bind(*args, **kwargs).arguments)
        except TypeError:
            pass  # the user's call is wrong; it raises its own error right after
        else:
            arguments.pop("self", None)
            return arguments
    return {"args": list(args[1:]), **kwargs}


def llm_provider(model: Any) -> str | None:
    provider = oi.infer_llm_provider_from_class_name(model)
    if provider is None and (host := oi.extract_llm_endpoint_from_sdk_instance(model)):
        provider = infer_llm_provider_from_host(host)
    return provider.value if provider is not None else None


def llm_start(model: Any, arguments: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    name = model_name(model)
    provider = llm_provider(model)
    attrs: dict[str, Any] = {}
    attrs.update(oi._input_value_and_mime_type(arguments))
    attrs.update(oi._llm_invocation_parameters(model, arguments))
    attrs.update(oi._llm_input_messages(arguments))
    # The identity last: a span over its attribute limit drops its oldest attributes first, and a long
    # conversation's messages (~3 attributes each) can outnumber the limit (OpenTelemetry's default: 128).
    attrs.update(c.step_attributes(FRAMEWORK, "llm", name, extra={c.GEN_AI_PROVIDER: provider}))
    attrs[SpanAttributes.LLM_MODEL_NAME] = name
    if provider is not None:
        attrs[SpanAttributes.LLM_PROVIDER] = provider
    return c.span_name(attrs), with_context(attrs)


class _Collector:
    """Stands in for a span so OpenInference's `_finish_model_span` hands us its attributes."""

    def __init__(self) -> None:
        self.attributes: dict[str, Any] = {}

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        self.attributes.update(attributes)

    def set_status(self, *args: Any, **kwargs: Any) -> None:
        pass  # the caller sets the status


class _Uncounted:
    """The model as `_finish_model_span` reads it, with zero `last_*_token_count` (see `llm_end`)."""

    last_input_token_count = 0
    last_output_token_count = 0

    def __init__(self, model: Any) -> None:
        self._model = model

    @property  # type: ignore[misc]  # OpenInference infers the provider from `__class__.__name__`
    def __class__(self) -> type:
        return type(self._model)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


_TOKEN_COUNTS = (SpanAttributes.LLM_TOKEN_COUNT_PROMPT, SpanAttributes.LLM_TOKEN_COUNT_COMPLETION,
                 SpanAttributes.LLM_TOKEN_COUNT_TOTAL)


def llm_end(model: Any, arguments: Mapping[str, Any], output: Any) -> dict[str, Any]:
    collector = _Collector()
    # A reply without `token_usage` (a user's own Model may return none): OpenInference then reads
    # `model.last_input_token_count`, which smolagents models no longer have, and failed with
    # AttributeError, losing the reply's output attributes too. It reads zeros from a stand-in instead,
    # and the counts it derives from them are dropped: the usage is unknown, not 0.
    unknown = not getattr(output, "token_usage", None) and not hasattr(model, "last_input_token_count")
    oi._finish_model_span(collector, _Uncounted(model) if unknown else model, arguments, output)  # type: ignore[arg-type]
    attrs = collector.attributes
    if unknown:
        for key in _TOKEN_COUNTS:
            attrs.pop(key, None)
    # Only what the model reported: a stream abandoned before its usage chunk has unknown usage, not 0.
    if (tin := attrs.get(SpanAttributes.LLM_TOKEN_COUNT_PROMPT)) is not None:
        attrs[c.GEN_AI_INPUT_TOKENS] = tin
    if (tout := attrs.get(SpanAttributes.LLM_TOKEN_COUNT_COMPLETION)) is not None:
        attrs[c.GEN_AI_OUTPUT_TOKENS] = tout
    if tool_calls := getattr(output, "tool_calls", None):
        attrs[c.TOOL_CALLS] = [call.function.name for call in tool_calls]
    return attrs


# --- tools, managed agents, final answers ------------------------------------------------------------
def _tool_arguments(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    named = {k: v for k, v in kwargs.items() if k != "sanitize_inputs_outputs"}
    if not args:
        return named
    if len(args) == 1 and not named:
        return args[0]
    return {"args": list(args), **named}


def tool_start(tool: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
    name = getattr(tool, "name", None) or type(tool).__name__
    kind = "final_answer" if name == "final_answer" else "tool"
    arguments = c.json_text(_tool_arguments(args, kwargs))
    attrs = c.step_attributes(FRAMEWORK, kind, name, extra={c.TOOL_ARGUMENTS: arguments})
    attrs[SpanAttributes.INPUT_VALUE] = arguments
    attrs[SpanAttributes.INPUT_MIME_TYPE] = JSON
    attrs.update(oi._tools(tool))
    return c.span_name(attrs), kind, with_context(attrs)


def tool_end(tool: Any, result: Any) -> dict[str, Any]:
    if _writes_when_shown(result):  # OpenInference's JSON of it would write the file (see `_shown`)
        shown = text(result)
        return {SpanAttributes.OUTPUT_VALUE: shown, SpanAttributes.OUTPUT_MIME_TYPE: JSON, c.TOOL_RESULT: shown}
    attrs = {k: v for k, v in oi._output_value_and_mime_type_for_tool_span(result, getattr(tool, "output_type", "any"))
             if v is not None}
    attrs[c.TOOL_RESULT] = text(result)
    return attrs


def managed_agent_start(agent: Any, task: Any, kwargs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    name = agent_name(agent)
    arguments = c.json_text({"task": task, **kwargs})
    attrs = c.step_attributes(FRAMEWORK, "tool", name, extra={c.TOOL_ARGUMENTS: arguments})
    attrs[SpanAttributes.INPUT_VALUE] = arguments
    attrs[SpanAttributes.INPUT_MIME_TYPE] = JSON
    attrs[SpanAttributes.TOOL_NAME] = name
    if description := getattr(agent, "description", None):
        attrs[SpanAttributes.TOOL_DESCRIPTION] = description
    return c.span_name(attrs), with_context(attrs)


def result_end(result: Any) -> dict[str, Any]:
    value = text(result)
    return {c.TOOL_RESULT: value, SpanAttributes.OUTPUT_VALUE: value, SpanAttributes.OUTPUT_MIME_TYPE: TEXT}


def forced_final_answer_start() -> tuple[str, dict[str, Any]]:
    attrs = c.step_attributes(FRAMEWORK, "final_answer", "final_answer")
    return c.span_name(attrs), with_context(attrs)
