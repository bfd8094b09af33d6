"""Step attributes of LangGraph runs, nodes, model and tool calls, computed from LangChain `Run` objects.
Pure functions (no spans, no state): cheap at span start, reusing OpenInference's own extractors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.tracers.schemas import Run
from langgraph._internal import _config as lg_config
from langgraph.types import Command, Send
from openinference.instrumentation import TraceConfig
from openinference.instrumentation.config import REDACTED_VALUE

# OpenInference's provider names (private, pinned <0.2 in pyproject), so `llm.provider` at start matches
# the value it writes at the end.
from openinference.instrumentation.langchain._tracer import (
    _LANGCHAIN_PROVIDER_MAP,
)
from openinference.semconv.trace import SpanAttributes

from massgen_tracing._internal import convention as c

FRAMEWORK = "langgraph"

# OpenTelemetry GenAI `gen_ai.provider.name` values for LangChain's `ls_provider`; others pass through.
_GENAI_PROVIDER = {
    "openai": "openai",
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "anthropic": "anthropic",
    "bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock",
    "google_vertexai": "gcp.vertex_ai",
    "vertexai": "gcp.vertex_ai",
    "google_genai": "gcp.gen_ai",
    "mistralai": "mistral_ai",
    "cohere": "cohere",
    "groq": "groq",
    "deepseek": "deepseek",
    "xai": "x_ai",
    "perplexity": "perplexity",
    "ibm": "ibm.watsonx.ai",
}


def metadata_of(run: Run) -> Mapping[str, Any]:
    md = run.extra.get("metadata") if run.extra else None
    return md if isinstance(md, Mapping) else {}


def session_id(metadata: Mapping[str, Any]) -> str | None:
    """Same precedence as OpenInference (`session_id`, `conversation_id`, then LangGraph's `thread_id`)."""
    sid = metadata.get("session_id") or metadata.get("conversation_id") or metadata.get("thread_id")
    return str(sid) if sid is not None else None


def is_node(run: Run, metadata: Mapping[str, Any], enclosing_ns: str | None) -> bool:
    """A LangGraph task's own run.

    Pregel starts a graph node's run with the tag `graph:step:N` of its super-step; a functional-API
    `@task` runs under its caller with the task's own name and a checkpoint namespace of its own.
    Runs inside a node inherit its `langgraph_*` metadata but neither the tag nor a new namespace.
    """
    if run.run_type != "chain":
        return False
    step = metadata.get("langgraph_step")
    if step is None:
        return False
    if f"graph:step:{step}" in (run.tags or ()):
        return True
    ns = metadata.get("langgraph_checkpoint_ns")
    return metadata.get("langgraph_node") == run.name and ns is not None and ns != enclosing_ns


def masked(value: str | None, hide: bool | None) -> str | None:
    if value is None:
        return None
    return REDACTED_VALUE if hide else value


to_json = c.json_text


def text_of(content: Any) -> str:
    """The text of a message content or streamed token: a str, or a list of str / content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts: list[str] = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "".join(parts)
    return ""


def _message_text(message: Any) -> str | None:
    if isinstance(message, BaseMessage):
        return text_of(message.content)
    if isinstance(message, str):
        return message
    if isinstance(message, Mapping):
        return text_of(message.get("content"))
    if isinstance(message, (tuple, list)) and len(message) == 2:  # ("user", "text")
        return text_of(message[1])
    return None


def _plain_state(state: Any) -> Any:
    """A pydantic or dataclass state as the dict of its fields (JSON-ready), so that its task reads
    `{"count": 0}` like the span's input, not `count=0`; anything else, or a failure, as it was."""
    try:
        if hasattr(state, "model_dump") and not isinstance(state, type):
            return state.model_dump(mode="json")
        if dataclasses.is_dataclass(state) and not isinstance(state, type):
            return dataclasses.asdict(state)
    except Exception:  # noqa: BLE001  # a state that will not convert: fall back to its JSON as before
        return state
    return state


def task_text(inputs: Any) -> str | None:
    """The task of a graph run, as a person would read it: the last input message when the state carries
    `messages`, else the input itself (JSON). None for `Command` / `None` inputs (a resume, not a task)."""
    if isinstance(inputs, Mapping) and set(inputs) == {"input"}:  # LangChain wraps non-dict inputs so
        inputs = inputs["input"]
    if inputs is None or isinstance(inputs, Command):
        return None
    if isinstance(inputs, str):
        return inputs
    inputs = _plain_state(inputs)
    if isinstance(inputs, Mapping):
        messages = inputs.get("messages")
        if isinstance(messages, Sequence) and not isinstance(messages, str) and messages:
            text = _message_text(messages[-1])
            if text is not None:
                return text
    return c.json_text(inputs)


def resume_value(inputs: Any) -> Any:
    """The value of `Command(resume=...)` when a run starts with one, else `None`."""
    if isinstance(inputs, Mapping) and set(inputs) == {"input"}:
        inputs = inputs["input"]
    return inputs.resume if isinstance(inputs, Command) else None


# The limit LangGraph's `ensure_config` fills in when none is given. langgraph 1.2 marks it with its own
# int subclass (so an explicit limit equal to it still counts); before, it compared by value.
_DEFAULT_LIMIT_TYPE: type | None = getattr(lg_config, "_DefaultRecursionLimit", None)
_DEFAULT_LIMIT: Any = getattr(lg_config, "DEFAULT_RECURSION_LIMIT", None)


def explicit_recursion_limit(limit: Any) -> int | None:
    """The run's `recursion_limit` when the user configured one, else None.

    LangGraph's default (10007 in langgraph 1.2) is a safety net, not a budget: as `massgen.step.max` it
    would only show a meaningless "step 5/10007".
    """
    if limit is None or isinstance(limit, bool):
        return None
    if _DEFAULT_LIMIT_TYPE is not None:
        return None if isinstance(limit, _DEFAULT_LIMIT_TYPE) else int(limit)
    return None if limit == _DEFAULT_LIMIT else int(limit)


def run_attributes(
    run: Run, metadata: Mapping[str, Any], recursion_limit: int | None, config: TraceConfig
) -> dict[str, Any]:
    return c.step_attributes(
        FRAMEWORK,
        "run",
        run.name,
        extra={
            c.STEP_MAX: int(recursion_limit) if recursion_limit is not None else None,
            c.RUN_INPUT: masked(task_text(run.inputs), config.hide_inputs),
            c.SESSION_ID: session_id(metadata),
        },
    )


def node_attributes(run: Run, metadata: Mapping[str, Any], attempt: int) -> dict[str, Any]:
    triggers = metadata.get("langgraph_triggers") or ()
    path = metadata.get("langgraph_path")
    return c.step_attributes(
        FRAMEWORK,
        "node",
        str(metadata.get("langgraph_node") or run.name),
        index=metadata.get("langgraph_step"),
        extra={
            c.NODE_TRIGGERS: [str(t) for t in triggers],
            c.NODE_PATH: str(tuple(path)) if path is not None else None,
            c.ATTEMPT: attempt,
            c.SESSION_ID: session_id(metadata),
        },
    )


def llm_attributes(run: Run, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Model and provider, known when the call starts.

    The prompt messages and invocation parameters are left to OpenInference's end-time update: at start
    they would go through the span-start path (masked, validated and set twice) and double its cost.
    """
    params = run.extra.get("invocation_params") if run.extra else None
    params = params if isinstance(params, Mapping) else {}
    model = params.get("model") or params.get("model_name") or metadata.get("ls_model_name") or run.name
    ls_provider = str(metadata.get("ls_provider") or "").lower() or None
    return c.step_attributes(
        FRAMEWORK,
        "llm",
        str(model),
        extra={
            c.GEN_AI_PROVIDER: _GENAI_PROVIDER.get(ls_provider, ls_provider) if ls_provider else None,
            c.SESSION_ID: session_id(metadata),
            SpanAttributes.LLM_MODEL_NAME: str(model),
            SpanAttributes.LLM_PROVIDER: (_LANGCHAIN_PROVIDER_MAP.get(ls_provider) or ls_provider)
            if ls_provider
            else None,
        },
    )


def tool_attributes(run: Run, metadata: Mapping[str, Any], config: TraceConfig,
                    arguments: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`arguments`: the parsed tool arguments when LangChain handed them over; else the run's inputs
    (the arguments, or a plain string input wrapped as {"input": s})."""
    if arguments is not None:
        text = to_json(dict(arguments))
    else:
        inputs = run.inputs or {}
        text = to_json(inputs["input"]) if set(inputs) == {"input"} else to_json(dict(inputs))
    return c.step_attributes(
        FRAMEWORK,
        "tool",
        run.name,
        extra={
            c.TOOL_ARGUMENTS: masked(text, config.hide_inputs),
            c.SESSION_ID: session_id(metadata),
            SpanAttributes.TOOL_NAME: run.name,
        },
    )


def tool_result(output: Any) -> str:
    content = getattr(output, "content", output)  # a ToolMessage, or whatever the tool returned
    return content if isinstance(content, str) else to_json(content)


def destinations(result: Any, ends: Mapping[Any, str] | None) -> list[str]:
    """Where a conditional edge sends the graph, mirroring `BranchSpec._finish` (path map applied)."""
    items = list(result) if isinstance(result, (list, tuple)) else [result]
    out: list[str] = []
    for r in items:
        if isinstance(r, Send):
            out.append(r.node)
        elif ends is not None and r in ends:
            out.append(str(ends[r]))
        else:
            out.append(str(r))
    return out


def command_targets(value: Any) -> list[str]:
    """`goto` targets of a `Command` a node returned (or of several, for a list of Commands)."""
    commands: Iterable[Any] = value if isinstance(value, (list, tuple)) else (value,)
    out: list[str] = []
    for cmd in commands:
        if not isinstance(cmd, Command) or not cmd.goto:
            continue
        goto = cmd.goto if isinstance(cmd.goto, (list, tuple)) else (cmd.goto,)
        out.extend(g.node if isinstance(g, Send) else str(g) for g in goto)
    return out
