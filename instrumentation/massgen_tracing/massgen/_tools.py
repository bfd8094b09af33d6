"""The MassGen custom tools: `langgraph_tool` and `smolagents_tool`.

MassGen imports this module when it registers the tools (agent creation, before coordination starts),
which is when its Logfire tracing must be switched on for one trace; see `_pipeline`.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
import threading
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import aclosing
from typing import Any, TypeVar, cast

from opentelemetry import context as otel_context

from massgen_tracing._internal import convention as c
from massgen_tracing._internal.guard import internal
from massgen_tracing._internal.settings import FALSE_WORDS, TRUE_WORDS
from massgen_tracing.massgen import _pipeline
from massgen_tracing.massgen._render import Line
from massgen_tracing.massgen._run import Outcome, in_thread, stream_call

try:
    from massgen.tool import context_params
    from massgen.tool._result import ExecutionResult, TextContent
except ImportError as exc:  # pragma: no cover - exercised only without MassGen
    raise ImportError(
        "massgen_tracing.massgen's tools run inside MassGen; install it with "
        "`pip install uv && uv pip install massgen==0.1.97` (pip's resolver gives up on it)"
    ) from exc

F = TypeVar("F", bound=Callable[..., Any])

# Parameters the model must not see. MassGen hides preset_args only when the config sets them, so the
# optional ones are declared as context parameters: hidden from the schema, and (as no execution
# context carries these names) filled from preset_args or left at their defaults.
_GRAPH_PARAMS = ("factory", "factory_kwargs", "input_key", "output_key", "sync")
_AGENT_PARAMS = ("factory", "factory_kwargs")
# Injected by MassGen itself: the agent (our tag for every span) and, when it has a workspace, its cwd.
_CONTEXT_PARAMS = ("agent_id", "agent_cwd")


def _hidden(*names: str) -> Callable[[F], F]:
    # MassGen's decorator is untyped; it only sets `__context_params__` on the function.
    return cast(Callable[[F], F], context_params(*names))


if _pipeline.honour_massgen_logfire_env():
    _pipeline.attach_to_massgen()


# --- factories ---------------------------------------------------------------------------------------
_file_modules: dict[str, Any] = {}
_file_lock = threading.Lock()


def resolve_factory(spec: str) -> Any:
    """`package.module:attr` or `path/to/file.py:attr` (relative to the working directory, as MassGen
    resolves custom tool paths) → the object."""
    module_part, sep, attr = spec.rpartition(":")
    if not sep or not module_part or not attr:
        raise ValueError(f"factory {spec!r} must look like 'package.module:make_graph' or 'path/to/file.py:make_graph'")
    if module_part.endswith(".py"):
        module = _load_file(module_part)
    else:
        try:
            module = importlib.import_module(module_part)
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            if not (missing == module_part or module_part.startswith(missing + ".")):
                raise  # the factory's module is there; something it imports is not: Python's message says what
            raise ModuleNotFoundError(
                f"factory {spec!r}: no module {missing!r} importable from {os.getcwd()} (preset_args.factory "
                f"takes 'package.module:function' or 'path/to/file.py:function')") from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            # Not Python's message: a file's module has a made-up name (massgen_tracing_factory_<hash>).
            names = [n for n in dir(obj) if not n.startswith("_")]
            close = difflib.get_close_matches(part, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise AttributeError(f"factory {spec!r}: {module_part!r} has no {part!r}{hint}") from None
    return obj


def _load_file(path: str) -> Any:
    full = os.path.abspath(path)
    with _file_lock:  # two agents calling the same tool at once must not execute the module twice
        module = _file_modules.get(full)
        if module is not None:
            return module
        if not os.path.isfile(full):
            raise FileNotFoundError(f"factory file {path!r} not found (relative paths start at {os.getcwd()})")
        # A name unique per path: two `graph.py` files in different folders must not collide.
        name = "massgen_tracing_factory_" + hashlib.sha1(full.encode()).hexdigest()[:12]
        spec = importlib.util.spec_from_file_location(name, full)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load factory file {path!r}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses and pickling look modules up by name
        spec.loader.exec_module(module)
        _file_modules[full] = module
        return module


def is_graph(obj: Any) -> bool:
    """A compiled LangGraph graph (or anything that streams like one)."""
    return hasattr(obj, "astream") and hasattr(obj, "get_graph")


def is_agent(obj: Any) -> bool:
    """A smolagents agent."""
    return hasattr(obj, "run") and hasattr(obj, "memory")


# tool -> (what its factory must give, the test for it)
_KINDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "langgraph_tool": ("a compiled LangGraph graph", is_graph),
    "smolagents_tool": ("a smolagents agent", is_agent),
}


def _build(tool: str, spec: str, kwargs: Any) -> Any:
    """The graph or agent `spec` names (or its factory returns), checked: a wrong preset is a message that
    names it, its value and what is allowed, never a framework's own error about a missing method."""
    wanted, is_wanted = _KINDS[tool]
    other_tool = next(t for t in _KINDS if t != tool)  # the one that takes what the other gives
    other, is_other = _KINDS[other_tool]
    if not spec:
        raise ValueError(f"{tool} needs preset_args.factory: 'package.module:function' or 'path/to/file.py:function'"
                         f" naming a function that returns {wanted} (or {wanted} itself)")
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise TypeError(f"preset_args.factory_kwargs {kwargs!r} must be a mapping of keyword arguments for the "
                        f"factory, e.g. {{model: gpt-4o-mini}}")
    obj = resolve_factory(spec)
    if is_wanted(obj):  # the attribute is the graph/agent itself, not a factory
        return obj
    if is_other(obj):
        raise TypeError(f"factory {spec!r} is {other}, not {wanted}: use {other_tool}")
    if not callable(obj):
        raise TypeError(f"factory {spec!r} is a {type(obj).__name__}; it must be a function returning {wanted}, "
                        f"or {wanted} itself")
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):  # a builtin or a C callable: no signature to check against
        signature = None
    if signature is not None:
        try:
            signature.bind(**(kwargs or {}))
        except TypeError as exc:
            bare = signature.replace(  # names and defaults: what the YAML can give
                parameters=[p.replace(annotation=inspect.Parameter.empty) for p in signature.parameters.values()],
                return_annotation=inspect.Signature.empty)
            raise TypeError(f"preset_args.factory_kwargs {dict(kwargs or {})!r} do not fit {_label(spec)}{bare}: "
                            f"{exc}") from None
    built = obj(**(kwargs or {}))
    if is_wanted(built):
        return built
    hint = f": use {other_tool}" if is_other(built) else ""
    raise TypeError(f"factory {spec!r} returned a {type(built).__name__}, not {wanted}{hint}")


def flag(name: str, value: Any) -> bool:
    """A yes/no preset as YAML may give it: a bool, 0/1, or the words true/false, yes/no, on/off."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise ValueError(f"preset_args.{name} {value!r} must be true or false (also yes/no, on/off, 1/0)")


def _label(spec: str) -> str:
    return spec.rpartition(":")[2] or spec or "tool"


# --- answers -----------------------------------------------------------------------------------------
def as_text(value: Any) -> str:
    """A framework's answer as the tool's text result."""
    content = getattr(value, "content", value)  # a LangChain message
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        parts = [p.get("text", "") if isinstance(p, dict) else str(p) for p in content]
        return "".join(str(p) for p in parts)
    return c.json_text(content)


def graph_answer(state: Any, output_key: str | None) -> str:
    if output_key:
        if not isinstance(state, Mapping) or output_key not in state:
            keys = ", ".join(map(str, state)) if isinstance(state, Mapping) else type(state).__name__
            raise ValueError(f"preset_args.output_key {output_key!r} is not in the graph's final state "
                           f"(it has: {keys})")
        return as_text(state[output_key])
    if isinstance(state, dict) and state.get("messages"):
        return as_text(state["messages"][-1])
    return as_text(state)


def graph_input(task: str, input_key: str | None) -> dict[str, Any]:
    if input_key:
        return {input_key: task}
    from langchain_core.messages import HumanMessage

    return {"messages": [HumanMessage(content=task)]}


def _interrupt_when(agent: Any, cancelled: threading.Event) -> Callable[[], None]:
    """Stop `agent` at its next step once `cancelled` is set (the thread itself cannot be stopped).

    `agent.interrupt()` alone is not enough: `run()` clears the flag when it starts, which may be after
    MassGen cancelled us. A step callback checks at the end of every step instead. Returns the undo.
    """
    from smolagents.memory import MemoryStep

    def check(step: Any) -> None:
        if cancelled.is_set():
            agent.interrupt()

    def undo() -> None:  # a prebuilt agent is reused: leave no callback behind
        with internal("massgen.smolagents_callback"):
            agent.step_callbacks._callbacks[MemoryStep].remove(check)

    with internal("massgen.smolagents_callback"):
        agent.step_callbacks.register(MemoryStep, check)
        return undo
    return lambda: None


# --- MassGen results ---------------------------------------------------------------------------------
async def _results(stream: AsyncGenerator[Line | Outcome, None], what: str) -> AsyncGenerator[Any, None]:
    # Closing (MassGen stops listening) must reach the run's cleanup now, not when garbage is collected.
    async with aclosing(stream):
        async for item in stream:
            yield _result(item, what)


def _masked(text: str) -> str:
    """`text` through the pipeline's redaction: an error quoting a key would reach MassGen's display and
    the model unmasked, though the same error is masked in the step lines, the record and the spans."""
    from massgen_tracing._internal import setup

    with internal("massgen.mask_error"):
        state = setup.current()
        red = getattr(state.processor, "_redactor", None) if state is not None else None
        if red is not None:
            return str(red.redact(text))
    return text


def _result(item: Line | Outcome, what: str) -> Any:
    if isinstance(item, Outcome):
        if item.error is not None:
            err = _masked(f"{type(item.error).__name__}: {item.error}")
            return ExecutionResult(output_blocks=[TextContent(data=f"Error: {what} failed: {err}")])
        return ExecutionResult(output_blocks=[TextContent(data=item.answer or "")])
    # is_log: shown live, kept out of the conversation the model sees.
    return ExecutionResult(output_blocks=[TextContent(data=item.text)], is_log=True)


# --- the tools ---------------------------------------------------------------------------------------
@_hidden(*_GRAPH_PARAMS, *_CONTEXT_PARAMS)
async def langgraph_tool(
    task: str,
    factory: str = "",
    factory_kwargs: dict[str, Any] | None = None,
    input_key: str | None = None,
    output_key: str | None = None,
    sync: bool = False,
    agent_id: str | None = None,
    agent_cwd: str | None = None,
) -> AsyncGenerator[Any, None]:
    """Run a LangGraph workflow on a task and return its final answer.

    Args:
        task: The task or question for the workflow, stated completely.
    """
    label = _label(factory)

    async def start(run_ctx: otel_context.Context) -> str:
        threaded = flag("sync", sync)
        graph = await in_thread(lambda: _build("langgraph_tool", factory, factory_kwargs), run_ctx)
        inputs = graph_input(task, input_key)
        # "messages" makes LangGraph stream model tokens (shown as deltas); "values" gives the answer.
        modes = ["values", "messages"]
        if threaded:
            def run() -> str:
                final = None
                for mode, chunk in graph.stream(inputs, stream_mode=modes):
                    if mode == "values":
                        final = chunk
                return graph_answer(final, output_key)

            return await in_thread(run, run_ctx)
        token = otel_context.attach(run_ctx)  # this task's own context copy: safe to attach across awaits
        try:
            final = None
            async for mode, chunk in graph.astream(inputs, stream_mode=modes):
                if mode == "values":
                    final = chunk
            return graph_answer(final, output_key)
        finally:
            otel_context.detach(token)

    async with aclosing(_results(stream_call("langgraph", label, agent_id, start), f"LangGraph {label}")) as results:
        async for result in results:
            yield result


@_hidden(*_AGENT_PARAMS, *_CONTEXT_PARAMS)
async def smolagents_tool(
    task: str,
    factory: str = "",
    factory_kwargs: dict[str, Any] | None = None,
    agent_id: str | None = None,
    agent_cwd: str | None = None,
) -> AsyncGenerator[Any, None]:
    """Run a smolagents agent on a task and return its final answer.

    Args:
        task: The task or question for the agent, stated completely.
    """
    label = _label(factory)
    cancelled = threading.Event()

    def run() -> str:
        agent = _build("smolagents_tool", factory, factory_kwargs)
        stop = _interrupt_when(agent, cancelled)
        try:
            return as_text(agent.run(task))
        finally:
            stop()

    async def start(run_ctx: otel_context.Context) -> str:
        # smolagents is synchronous: the whole run happens on a worker thread.
        return await in_thread(run, run_ctx)

    stream = stream_call("smolagents", label, agent_id, start, cancelled.set)
    async with aclosing(_results(stream, f"smolagents {label}")) as results:
        async for result in results:
            yield result
