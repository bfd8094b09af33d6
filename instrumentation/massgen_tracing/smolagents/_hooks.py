"""What runs around each smolagents call: start a step span with its attributes, attach it only
while smolagents' own code runs, record what happens inside, end it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from typing import Any

from openinference.semconv.trace import SpanAttributes
from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.trace import Span, Status, StatusCode, Tracer
from smolagents.memory import FinalAnswerStep, PlanningStep, ToolCall
from smolagents.models import agglomerate_stream_deltas

from massgen_tracing._internal import convention as c
from massgen_tracing._internal.guard import guarded, internal
from massgen_tracing.smolagents import _attributes as a

# The innermost step of ours in the current context, next to the span itself.
_FRAME = context_api.create_key("massgen_tracing.smolagents.frame")
_SUPPRESS = context_api._SUPPRESS_INSTRUMENTATION_KEY
# What `end_attrs` receives when the step failed or was abandoned (None is a legitimate result).
NO_RESULT: Any = object()


class RunState:
    """Per run: the budget its steps report against and the tokens of its own model calls."""

    __slots__ = ("agent", "closing", "input_tokens", "last_action", "max_steps", "max_steps_error", "output_tokens",
                 "span")

    def __init__(self, agent: Any, span: Span, max_steps: int) -> None:
        self.agent = agent
        self.span = span
        self.max_steps = max_steps
        self.input_tokens = 0
        self.output_tokens = 0
        self.max_steps_error: BaseException | None = None
        self.closing = False  # the run's consumer stopped iterating it (break, close, garbage)
        self.last_action: Active | None = None  # the run's own latest action step


class Active:
    """One started step span: its context, and what its end attributes are computed from."""

    __slots__ = ("ctx", "data", "end_attrs", "error", "kind", "owner", "run", "span")

    def __init__(self, span: Span, kind: str, owner: Any, run: RunState | None,
                 end_attrs: Callable[[Active, Any], dict[str, Any]], data: Any = None) -> None:
        self.span = span
        self.kind = kind
        self.owner = owner
        self.run = run
        self.end_attrs = end_attrs
        self.data = data
        # Set by `end_attrs` when a step that returned normally still failed (max steps).
        self.error: BaseException | None = None
        self.ctx = context_api.set_value(_FRAME, self, trace_api.set_span_in_context(span))


def current_frame() -> Active | None:
    frame = context_api.get_value(_FRAME)
    return frame if isinstance(frame, Active) else None


def _stream_requested(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    # MultiStepAgent.run(task, stream=False, ...): stream is the second positional parameter.
    return bool(kwargs["stream"] if "stream" in kwargs else len(args) > 1 and args[1])


class Hooks:
    """The replacement bodies; `SmolagentsInstrumentor` binds each to the original function it wraps."""

    def __init__(self, tracer: Tracer, content: a.Content) -> None:
        self.tracer = tracer
        self.content = content

    # --- span lifecycle (all guarded: our failures never reach the agent) ---------------------------
    def _begin(self, name: str, attrs: dict[str, Any], kind: str, owner: Any, run: RunState | None,
               end_attrs: Callable[[Active, Any], dict[str, Any]], data: Any = None) -> Active:
        span = self.tracer.start_span(name, attributes=self.content.mask(attrs))
        return Active(span, kind, owner, run, end_attrs, data)

    # End attributes are computed in their own guard so a failure there still ends the span.
    @guarded("smolagents.finish")
    def _finish(self, active: Active, result: Any) -> None:
        span = active.span
        if not span.is_recording():  # already ended as abandoned: tracing stopped (the program exited)
            return
        with internal("smolagents.end_attributes"):
            span.set_attributes(self.content.mask(active.end_attrs(active, result)))
        if active.error is None:
            span.set_status(StatusCode.OK)
        else:
            span.set_status(Status(StatusCode.ERROR, a.status_description(active.error)))
        span.end()

    @guarded("smolagents.fail")
    def _fail(self, active: Active, exc: BaseException) -> None:
        span = active.span
        if not span.is_recording():  # already ended as abandoned: tracing stopped (the program exited)
            return
        with internal("smolagents.fail_attributes"):
            span.set_attributes(self.content.mask(active.end_attrs(active, NO_RESULT)))
            if active.kind == "action" and (line := a.code_error_line(exc)) is not None:
                span.set_attributes(self.content.mask({c.CODE_ERROR_LINE: line}))
        if c.clean_exit(exc):  # sys.exit(0) in a tool: the program leaving, not the step failing
            span.set_status(StatusCode.OK)
        else:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, a.status_description(exc)))
        span.end()

    @guarded("smolagents.abandon")
    def _abandon(self, active: Active) -> None:
        # The step's generator was closed before it finished: by the program (abandoned, status UNSET),
        # or by smolagents itself (below).
        span = active.span
        if not span.is_recording():  # already ended as abandoned: tracing stopped (the program exited)
            return
        if active.kind == "planning" and isinstance(active.data, PlanningStep):
            # smolagents yields the finished PlanningStep as its planning generator's last item: a
            # consumer that stops right there stopped after the step, not during it.
            self._finish(active, None)
            return
        with internal("smolagents.abandon_attributes"):
            span.set_attributes(self.content.mask(active.end_attrs(active, NO_RESULT)))
        if active.kind in ("action", "planning") and active.run is not None and not active.run.closing:
            # Not the program's doing: smolagents itself stopped reading this step, which it does only
            # when its run loop raised on the step's output (a final answer that failed
            # `final_answer_checks`); it records that error on its memory step and runs on.
            if active.error is not None:  # a final answer check rejected its answer
                span.record_exception(active.error)
                span.set_status(Status(StatusCode.ERROR, a.status_description(active.error)))
            else:
                span.set_status(Status(StatusCode.ERROR, "stopped by smolagents before it finished (its run "
                                                         "loop raised on this step's output)"))
        else:
            span.set_attribute(c.ABANDONED, True)
        span.end()

    def _drive(self, active: Active, make_inner: Callable[[], Iterator[Any]],
               on_item: Callable[[Active, Any], None], item_type: type) -> Generator[Any, Any, Any]:
        """Iterate the wrapped generator with the step's context attached only while its code runs:
        between items the consumer's code runs in its own context, and a consumer that stops early
        (break, close(), garbage collection) leaves nothing attached. Items of `item_type` go to
        `on_item` (the type test keeps streamed deltas cheap on the outer steps)."""
        ctx = active.ctx
        inner: Iterator[Any] | None = None
        sent: Any = None
        thrown: BaseException | None = None
        try:
            while True:
                token = context_api.attach(ctx)
                try:
                    if inner is None:
                        inner = iter(make_inner())
                    if thrown is not None:
                        exc, thrown = thrown, None
                        throw = getattr(inner, "throw", None)
                        if throw is None:
                            raise exc
                        item = throw(exc)
                    elif sent is None:
                        item = next(inner)
                    else:
                        item = inner.send(sent)  # type: ignore[attr-defined]  # only a generator is sent to
                except StopIteration as stop:
                    result = stop.value
                    break
                finally:
                    context_api.detach(token)
                if isinstance(item, item_type):
                    on_item(active, item)
                try:
                    sent = yield item
                except GeneratorExit:
                    raise
                except BaseException as exc:  # noqa: BLE001  # forwarded into the wrapped generator
                    thrown = exc
        except GeneratorExit:
            if active.kind == "run" and active.run is not None:
                active.run.closing = True  # the steps closed below were abandoned by the program
            # Close the wrapped generator first so the steps inside end before this one.
            try:
                if inner is not None and (close := getattr(inner, "close", None)) is not None:
                    token = context_api.attach(ctx)
                    try:
                        close()
                    finally:
                        context_api.detach(token)
            finally:
                self._abandon(active)
            raise
        except BaseException as exc:
            self._fail(active, exc)
            raise
        self._finish(active, result)
        return result

    def _call(self, active: Active | None, original: Callable[..., Any], args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> Any:
        """Call a plain (non-generator) function inside the step; untraced when starting failed."""
        if active is None:
            return original(*args, **kwargs)
        token = context_api.attach(active.ctx)
        try:
            result = original(*args, **kwargs)
        except BaseException as exc:
            self._fail(active, exc)
            raise
        finally:
            context_api.detach(token)
        self._finish(active, result)
        return result

    # --- the run ------------------------------------------------------------------------------------
    def run(self, original: Callable[..., Any], agent: Any, args: tuple[Any, ...],
            kwargs: dict[str, Any]) -> Any:
        frame = current_frame()
        if context_api.get_value(_SUPPRESS) or (frame is not None and frame.kind == "run"
                                                and frame.owner is agent):
            return original(agent, *args, **kwargs)
        if _stream_requested(args, kwargs):
            # run() only prepares here and hands back `_run_stream`: the span starts when the
            # consumer starts iterating, so a generator that is never iterated leaves no open span.
            result = original(agent, *args, **kwargs)
            if not isinstance(result, Iterator):
                return result
            return self._run_stream(agent, args, kwargs, result)
        return self._call(self._start_run(agent, args, kwargs), original, (agent, *args), kwargs)

    def _run_stream(self, agent: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                    inner: Iterator[Any]) -> Generator[Any, Any, Any]:
        active = self._start_run(agent, args, kwargs)
        if active is None:
            return (yield from inner)
        return (yield from self._drive(active, lambda: inner, self._on_run_item, FinalAnswerStep))

    @guarded("smolagents.run_start")
    def _start_run(self, agent: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Active:
        task = kwargs["task"] if "task" in kwargs else args[0] if args else None
        max_steps = kwargs.get("max_steps") or (args[5] if len(args) > 5 else None) or agent.max_steps
        additional_args = kwargs.get("additional_args") or (args[4] if len(args) > 4 else None)
        # A managed agent runs its manager's task wrapped in smolagents' managed-agent prompt ("You're a
        # helpful agent named ..."): every such run showed the same boilerplate, whatever it was asked.
        frame = current_frame()
        given = frame.data if frame is not None and frame.kind == "tool" and frame.owner is agent else None
        name, attrs = a.run_start(agent, task, max_steps, additional_args, given)
        span = self.tracer.start_span(name, attributes=self.content.mask(attrs))
        run = RunState(agent, span, max_steps)
        return Active(span, "run", agent, run, self._run_end)

    @guarded("smolagents.run_item")
    def _on_run_item(self, active: Active, item: Any) -> None:
        active.data = item.output

    def _run_end(self, active: Active, result: Any) -> dict[str, Any]:
        run = active.run
        assert run is not None
        if result is None or result is NO_RESULT:  # streamed: the FinalAnswerStep seen on the way
            output = active.data
        else:  # run(return_full_result=True) returns a RunResult
            output = result.output if type(result).__name__ == "RunResult" else result
        attrs = a.run_end(output, run.input_tokens, run.output_tokens)
        # The run returns the forced answer but did not finish its task: an error of the run.
        active.error = run.max_steps_error
        return attrs

    # --- a managed agent called as a tool -----------------------------------------------------------
    def managed_call(self, original: Callable[..., Any], agent: Any, args: tuple[Any, ...],
                     kwargs: dict[str, Any]) -> Any:
        frame = current_frame()
        if context_api.get_value(_SUPPRESS) or (frame is not None and frame.kind == "tool"
                                                and frame.owner is agent):
            return original(agent, *args, **kwargs)
        return self._call(self._start_managed(agent, args, kwargs, frame), original, (agent, *args), kwargs)

    @guarded("smolagents.managed_start")
    def _start_managed(self, agent: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                       frame: Active | None) -> Active:
        task = kwargs.get("task", args[0] if args else None)
        rest = {k: v for k, v in kwargs.items() if k != "task"}
        name, attrs = a.managed_agent_start(agent, task, rest)
        # The task as the manager gave it, for the run it starts (`_start_run`).
        return self._begin(name, attrs, "tool", agent, frame.run if frame else None, _result_end, task)

    # --- planning steps -----------------------------------------------------------------------------
    def planning(self, original: Callable[..., Any], agent: Any, args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> Generator[Any, Any, Any]:
        frame = current_frame()
        active = None
        if not context_api.get_value(_SUPPRESS) and not (frame is not None and frame.kind == "planning"
                                                         and frame.owner is agent):
            active = self._start_planning(agent, args, kwargs, frame)
        if active is None:
            return (yield from original(agent, *args, **kwargs))
        return (yield from self._drive(active, lambda: original(agent, *args, **kwargs), self._on_planning_item,
                                     PlanningStep))

    @guarded("smolagents.planning_start")
    def _start_planning(self, agent: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                        frame: Active | None) -> Active:
        # _generate_planning_step(task, is_first_step, step)
        index = kwargs["step"] if "step" in kwargs else args[2] if len(args) > 2 else None
        run = frame.run if frame is not None else None
        max_steps = run.max_steps if run is not None and run.agent is agent else agent.max_steps
        name, attrs = a.planning_start(agent, index, max_steps)
        return self._begin(name, attrs, "planning", agent, run, _planning_end)

    @guarded("smolagents.planning_item")
    def _on_planning_item(self, active: Active, item: Any) -> None:
        active.data = item

    # --- action steps -------------------------------------------------------------------------------
    def action(self, original: Callable[..., Any], agent: Any, args: tuple[Any, ...],
               kwargs: dict[str, Any]) -> Generator[Any, Any, Any]:
        frame = current_frame()
        active = None
        if not context_api.get_value(_SUPPRESS) and not (frame is not None and frame.kind == "action"
                                                         and frame.owner is agent):
            active = self._start_action(agent, args, kwargs, frame)
        if active is None:
            return (yield from original(agent, *args, **kwargs))
        return (yield from self._drive(active, lambda: original(agent, *args, **kwargs), self._on_action_item,
                                     ToolCall))

    @guarded("smolagents.action_start")
    def _start_action(self, agent: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                      frame: Active | None) -> Active:
        memory_step = kwargs["memory_step"] if "memory_step" in kwargs else args[0]
        index = memory_step.step_number
        run = frame.run if frame is not None else None
        if run is not None and run.agent is agent:
            max_steps = run.max_steps
            # "Step N of M" on the run span: the run is what progresses; the step knows its own index.
            run.span.add_event(c.EVENT_PROGRESS, {c.PROGRESS_CURRENT: index, c.PROGRESS_TOTAL: max_steps})
        else:
            max_steps = agent.max_steps
        name, attrs = a.action_start(agent, index, max_steps)
        active = self._begin(name, attrs, "action", agent, run, _action_end, memory_step)
        if run is not None and run.agent is agent:
            run.last_action = active
        return active

    def final_answer_check(self, original: Callable[..., Any], agent: Any, args: tuple[Any, ...],
                           kwargs: dict[str, Any]) -> Any:
        """`_validate_final_answer`: a check that rejects the answer fails the action step that gave it.
        smolagents raises in its run loop, records the error on its memory step only after it stopped
        reading the step (see `_abandon`), and runs on."""
        try:
            return original(agent, *args, **kwargs)
        except Exception as exc:
            with internal("smolagents.final_answer_rejected"):
                frame = current_frame()  # the run's: its loop calls the checks
                run = frame.run if frame is not None else None
                if run is not None and run.agent is agent and run.last_action is not None:
                    run.last_action.error = exc
            raise

    @guarded("smolagents.action_item")
    def _on_action_item(self, active: Active, item: Any) -> None:
        memory_step = active.data
        attrs = a.decision_event(item.name, item.arguments)
        active.span.add_event(c.EVENT_TOOL_DECISION, self.content.mask(attrs))
        # CodeAgent yields its parsed code as a `python_interpreter` call: the same string object.
        if memory_step is not None and item.arguments is memory_step.code_action:
            active.span.set_attributes(self.content.mask({c.CODE: item.arguments}))

    # --- model calls --------------------------------------------------------------------------------
    def generate(self, original: Callable[..., Any], model: Any, args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> Any:
        frame = current_frame()
        # A model calling another model (or super().generate) is one model call.
        if context_api.get_value(_SUPPRESS) or (frame is not None and frame.kind == "llm"):
            return original(model, *args, **kwargs)
        return self._call(self._start_llm(original, model, args, kwargs, frame), original, (model, *args),
                          kwargs)

    def generate_stream(self, original: Callable[..., Any], model: Any, args: tuple[Any, ...],
                        kwargs: dict[str, Any]) -> Generator[Any, Any, Any]:
        frame = current_frame()
        active = None
        if not context_api.get_value(_SUPPRESS) and not (frame is not None and frame.kind == "llm"):
            active = self._start_llm(original, model, args, kwargs, frame, stream=True)
        if active is None:
            return (yield from original(model, *args, **kwargs))
        return (yield from self._drive(active, lambda: original(model, *args, **kwargs), self._on_delta, object))

    @guarded("smolagents.llm_start")
    def _start_llm(self, original: Callable[..., Any], model: Any, args: tuple[Any, ...],
                   kwargs: dict[str, Any], frame: Active | None, stream: bool = False) -> Active:
        arguments = a.bind(original, (model, *args), kwargs)
        name, attrs = a.llm_start(model, arguments)
        data = _LlmCall(model, arguments, [] if stream else None)
        return self._begin(name, attrs, "llm", model, frame.run if frame else None, _llm_end, data)

    @guarded("smolagents.llm_delta")
    def _on_delta(self, active: Active, item: Any) -> None:
        active.data.deltas.append(item)
        if content := getattr(item, "content", None):
            active.span.add_event(c.EVENT_DELTA, self.content.mask({c.DELTA_TEXT: content, c.DELTA_COUNT: 1}))

    # --- tools --------------------------------------------------------------------------------------
    def tool(self, original: Callable[..., Any], tool: Any, args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> Any:
        frame = current_frame()
        if context_api.get_value(_SUPPRESS) or (frame is not None and frame.owner is tool):
            return original(tool, *args, **kwargs)
        return self._call(self._start_tool(tool, args, kwargs, frame), original, (tool, *args), kwargs)

    @guarded("smolagents.tool_start")
    def _start_tool(self, tool: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                    frame: Active | None) -> Active:
        name, kind, attrs = a.tool_start(tool, args, kwargs)
        return self._begin(name, attrs, kind, tool, frame.run if frame else None, _tool_end)

    # --- the answer forced when max_steps is exhausted -------------------------------------------------
    def max_steps(self, original: Callable[..., Any], agent: Any, args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> Any:
        frame = current_frame()
        if context_api.get_value(_SUPPRESS) or (frame is not None and frame.kind == "final_answer"
                                                and frame.owner is agent):
            return original(agent, *args, **kwargs)
        return self._call(self._start_max_steps(agent, frame), original, (agent, *args), kwargs)

    @guarded("smolagents.max_steps_start")
    def _start_max_steps(self, agent: Any, frame: Active | None) -> Active:
        name, attrs = a.forced_final_answer_start()
        run = frame.run if frame is not None and frame.run is not None and frame.run.agent is agent else None
        return self._begin(name, attrs, "final_answer", agent, run, self._max_steps_end)

    def _max_steps_end(self, active: Active, result: Any) -> dict[str, Any]:
        if result is NO_RESULT:
            return {}
        attrs = a.result_end(result)
        steps = getattr(getattr(active.owner, "memory", None), "steps", None)
        error = getattr(steps[-1], "error", None) if steps else None
        if isinstance(error, BaseException):
            # smolagents records AgentMaxStepsError on the step it appends; it is never raised.
            active.span.record_exception(error)
            active.error = error
            if active.run is not None:
                active.run.max_steps_error = error
        return attrs

    # --- CodeAgent print output -----------------------------------------------------------------------
    def printed(self, original: Callable[..., Any], container: Any, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> Any:
        result = original(container, *args, **kwargs)
        frame = current_frame()
        if frame is not None and frame.kind == "action" and args:
            self._log(frame, args[0])
        return result

    @guarded("smolagents.log")
    def _log(self, frame: Active, printed: Any) -> None:
        line = str(printed)
        frame.span.add_event(c.EVENT_LOG, self.content.mask({c.LOG_TEXT: line.removesuffix("\n")}))


class _LlmCall:
    __slots__ = ("arguments", "deltas", "model")

    def __init__(self, model: Any, arguments: dict[str, Any], deltas: list[Any] | None) -> None:
        self.model = model
        self.arguments = arguments
        self.deltas = deltas


_USAGE_KEYS = frozenset({c.GEN_AI_INPUT_TOKENS, c.GEN_AI_OUTPUT_TOKENS, SpanAttributes.LLM_TOKEN_COUNT_PROMPT,
                         SpanAttributes.LLM_TOKEN_COUNT_COMPLETION, SpanAttributes.LLM_TOKEN_COUNT_TOTAL})


def _llm_end(active: Active, result: Any) -> dict[str, Any]:
    call: _LlmCall = active.data
    usage_known = True
    if call.deltas is not None:
        if not call.deltas:
            return {}
        # smolagents sums usage over the deltas, 0 when none carried any (a stream abandoned before
        # its usage chunk): unknown, so leave the counts out rather than report 0.
        usage_known = any(d.token_usage for d in call.deltas)
        result = agglomerate_stream_deltas(call.deltas)
    elif result is NO_RESULT:
        return {}
    attrs = a.llm_end(call.model, call.arguments, result)
    if not usage_known:
        attrs = {k: v for k, v in attrs.items() if k not in _USAGE_KEYS}
    if active.run is not None:
        active.run.input_tokens += attrs.get(c.GEN_AI_INPUT_TOKENS) or 0
        active.run.output_tokens += attrs.get(c.GEN_AI_OUTPUT_TOKENS) or 0
    return attrs


def _planning_end(active: Active, result: Any) -> dict[str, Any]:
    return a.planning_end(active.data)


def _action_end(active: Active, result: Any) -> dict[str, Any]:
    return a.action_end(active.data)


def _tool_end(active: Active, result: Any) -> dict[str, Any]:
    return {} if result is NO_RESULT else a.tool_end(active.owner, result)


def _result_end(active: Active, result: Any) -> dict[str, Any]:
    return {} if result is NO_RESULT else a.result_end(result)
