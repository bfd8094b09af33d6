"""One workflow, two frameworks: the same step kinds carry the same convention attributes and span-name shapes.

A LangGraph ReAct graph and a smolagents ToolCallingAgent do the same job with the same tool: the model
calls `add(1, 2)`, then answers. Per step kind (run, llm, tool) the keys of the convention
(`convention.ATTRIBUTES`) present when the span starts and when it ends must be the same in both
frameworks, except for the differences listed in `DIFFERENCES`, each with its reason; a difference that
goes away fails the test too, so the list stays true. OpenInference's own keys (`llm.input_messages.*`,
`smolagents.*`, `metadata`, ...) are each framework's OpenInference format and are not compared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from langchain_core.tools import tool as langchain_tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from massgen_tracing._internal import convention as c
from massgen_tracing.langgraph import LangGraphInstrumentor
from massgen_tracing.smolagents import SmolagentsInstrumentor
from massgen_tracing.testing import langchain_models as lc_models
from massgen_tracing.testing import smolagents_models as sa_models
from smolagents import ToolCallingAgent
from smolagents import tool as smolagents_tool

MODEL = "m"
NAME = "calc"  # the graph's name and the agent's name
TASK = "What is 1 + 2?"
BUDGET = 4  # smolagents `max_steps`; LangGraph `recursion_limit`, set so both runs carry `massgen.step.max`
COMPARED_KINDS = ("run", "llm", "tool")
CONVENTION_KEYS = frozenset(a.name for a in c.ATTRIBUTES)

_INPUT_AT_END = ("LangGraph: OpenInference's LangChain tracer writes `input.value` with the outputs when "
                 "the run ends (starting a step stays cheap); smolagents: OpenInference's smolagents "
                 "attributes, at start. The convention allows either (`start or end`).")
_PROVIDER = ("`gen_ai.provider.name` is written where the provider is known: a LangChain chat model "
             "declares it (`ls_provider`; ScriptedChatModel says `scripted`), a smolagents model has no "
             "such field and the provider is inferred from known model classes or endpoints only, which "
             "ScriptedModel is not. With ChatOpenAI / OpenAIServerModel both say `openai`.")
_RUN_TOKENS = ("smolagents also writes OpenInference's token counts on its run span, as OpenInference's "
               "smolagents instrumentor does; LangGraph's run has only "
               "`gen_ai.usage.*`, the sum of its model calls, as OpenInference's LangChain tracer writes "
               "no token counts on a chain. Backends that add `llm.token_count.*` over a whole trace count "
               "a smolagents run's tokens twice (openinference#3164).")

# (kind, "start" | "end") -> {key: (framework that has it, reason)}
DIFFERENCES: dict[tuple[str, str], dict[str, tuple[str, str]]] = {
    ("run", "start"): {c.INPUT_VALUE: ("smolagents", _INPUT_AT_END)},
    ("run", "end"): {c.LLM_TOKEN_PROMPT: ("smolagents", _RUN_TOKENS),
                     c.LLM_TOKEN_COMPLETION: ("smolagents", _RUN_TOKENS),
                     c.LLM_TOKEN_TOTAL: ("smolagents", _RUN_TOKENS)},
    ("llm", "start"): {c.INPUT_VALUE: ("smolagents", _INPUT_AT_END),
                       c.GEN_AI_PROVIDER: ("langgraph", _PROVIDER)},
    ("llm", "end"): {c.GEN_AI_PROVIDER: ("langgraph", _PROVIDER)},
    ("tool", "start"): {c.INPUT_VALUE: ("smolagents", _INPUT_AT_END)},
    ("tool", "end"): {},
}

# The span name of each kind with the step's name as `<name>`; a run's GenAI operation (`invoke_workflow`
# for a graph, `invoke_agent` for an agent, as the GenAI conventions say) as `<operation>`.
NAME_SHAPES = {"run": "<operation> <name>", "llm": "chat <name>", "tool": "execute_tool <name>"}
RUN_OPERATIONS = {"langgraph": "invoke_workflow", "smolagents": "invoke_agent"}


def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first integer.
        b: The second integer.
    """
    return a + b


@dataclass(frozen=True)
class Step:
    kind: str
    name: str  # the span name
    start: dict[str, Any]  # attributes when the span started
    end: dict[str, Any]  # attributes when it ended


class _StartCapture(SpanProcessor):
    """What a live processor sees: the attributes a span carries in `on_start`."""

    def __init__(self) -> None:
        self.starts: dict[int, dict[str, Any]] = {}

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.starts[span.context.span_id] = dict(span.attributes or {})

    def on_end(self, span: ReadableSpan) -> None:
        pass


def traced_steps(instrumentor: Any, workload: Callable[[], None]) -> list[Step]:
    """Run `workload` instrumented into a fresh provider; its step spans in start order."""
    capture, exporter = _StartCapture(), InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(capture)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor.instrument(tracer_provider=provider)
    try:
        workload()
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
    assert not trace.get_current_span().get_span_context().is_valid
    spans = sorted(exporter.get_finished_spans(), key=lambda s: s.start_time or 0)
    return [Step(capture.starts[s.context.span_id][c.STEP_KIND], s.name, capture.starts[s.context.span_id],
                 dict(s.attributes or {})) for s in spans if c.STEP_KIND in capture.starts[s.context.span_id]]


def run_langgraph() -> None:
    model = lc_models.ScriptedChatModel(replies=[[lc_models.tool_call("add", {"a": 1, "b": 2})], "The sum is 3."],
                                        model_name=MODEL)
    add_tool = langchain_tool(add)
    bound = model.bind_tools([add_tool])
    builder = StateGraph(MessagesState)
    builder.add_node("agent", lambda state: {"messages": [bound.invoke(state["messages"])]})
    builder.add_node("tools", ToolNode([add_tool]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    out = builder.compile(name=NAME).invoke({"messages": [("user", TASK)]}, {"recursion_limit": BUDGET})
    assert out["messages"][-1].content == "The sum is 3."


def run_smolagents() -> None:
    model = sa_models.ScriptedModel([sa_models.tool_call("add", a=1, b=2), sa_models.final_answer("3")],
                                    model_id=MODEL)
    agent = ToolCallingAgent(tools=[smolagents_tool(add)], model=model, max_steps=BUDGET, name=NAME,
                             verbosity_level=0)
    assert agent.run(TASK) == "3"


@pytest.fixture(scope="module")
def steps() -> Iterator[dict[str, list[Step]]]:
    yield {"langgraph": traced_steps(LangGraphInstrumentor(), run_langgraph),
           "smolagents": traced_steps(SmolagentsInstrumentor(), run_smolagents)}


def _keys(steps: list[Step], kind: str, phase: str) -> set[str]:
    """Convention keys present on any step of `kind` at start (or at end) of its span."""
    return {k for s in steps if s.kind == kind for k in (s.start if phase == "start" else s.end)
            if k in CONVENTION_KEYS}


def test_both_runs_have_the_steps_compared(steps: dict[str, list[Step]]) -> None:
    # The same job: one run, two model calls, one call of `add` in each framework.
    for framework in ("langgraph", "smolagents"):
        assert [s.start[c.STEP_NAME] for s in steps[framework] if s.kind in COMPARED_KINDS] == [
            NAME, MODEL, "add", MODEL], framework


@pytest.mark.parametrize("phase", ["start", "end"])
@pytest.mark.parametrize("kind", COMPARED_KINDS)
def test_each_step_kind_carries_the_same_convention_keys_in_both_frameworks(
        steps: dict[str, list[Step]], kind: str, phase: str) -> None:
    langgraph, smolagents = _keys(steps["langgraph"], kind, phase), _keys(steps["smolagents"], kind, phase)
    documented = DIFFERENCES[(kind, phase)]
    assert {k: "langgraph" for k in langgraph - smolagents} | {k: "smolagents" for k in smolagents - langgraph} \
        == {k: framework for k, (framework, _) in documented.items()}
    # The keys both have are the bulk of the convention for that kind, identity first.
    assert {c.FRAMEWORK, c.STEP_KIND, c.STEP_NAME, c.OPENINFERENCE_SPAN_KIND, c.GEN_AI_OPERATION} \
        <= langgraph & smolagents


def test_every_documented_difference_says_why() -> None:
    for (kind, phase), keys in DIFFERENCES.items():
        assert kind in COMPARED_KINDS and phase in ("start", "end")
        for key, (framework, reason) in keys.items():
            assert key in CONVENTION_KEYS and framework in RUN_OPERATIONS and len(reason) > 40, key


def _shape(step: Step) -> str:
    shape = step.name.replace(str(step.start[c.STEP_NAME]), "<name>")
    if step.kind == "run":
        shape = shape.replace(str(step.start[c.GEN_AI_OPERATION]), "<operation>", 1)
    return shape


@pytest.mark.parametrize("kind", COMPARED_KINDS)
def test_each_step_kind_has_the_same_span_name_shape_in_both_frameworks(
        steps: dict[str, list[Step]], kind: str) -> None:
    for framework in ("langgraph", "smolagents"):
        assert {_shape(s) for s in steps[framework] if s.kind == kind} == {NAME_SHAPES[kind]}, framework
    if kind != "run":  # same model and tool: the very same names
        assert [s.name for s in steps["langgraph"] if s.kind == kind] == [
            s.name for s in steps["smolagents"] if s.kind == kind]


def test_runs_are_named_by_their_genai_operation(steps: dict[str, list[Step]]) -> None:
    for framework, operation in RUN_OPERATIONS.items():
        [run] = [s for s in steps[framework] if s.kind == "run"]
        assert (run.name, run.start[c.GEN_AI_OPERATION]) == (f"{operation} {NAME}", operation)


def test_every_step_is_named_by_the_convention_rule(steps: dict[str, list[Step]]) -> None:
    for framework in ("langgraph", "smolagents"):
        assert [s.name for s in steps[framework]] == [c.span_name(s.start) for s in steps[framework]]
    assert [s.name for s in steps["langgraph"]] == [
        "invoke_workflow calc", "agent", "chat m", "tools", "execute_tool add", "agent", "chat m"]
    assert [s.name for s in steps["smolagents"]] == [
        "invoke_agent calc", "Step 1", "chat m", "execute_tool add", "Step 2", "chat m", "final_answer"]


@pytest.mark.parametrize(("framework", "kind", "name", "index", "expected"), [
    ("langgraph", "run", "research", None, "invoke_workflow research"),
    ("smolagents", "run", "calc", None, "invoke_agent calc"),
    ("langgraph", "node", "agent", 3, "agent"),
    ("smolagents", "planning", "calc", 1, "plan calc"),
    ("smolagents", "action", "calc", 2, "Step 2"),
    ("langgraph", "llm", "gpt-4o-mini", None, "chat gpt-4o-mini"),
    ("smolagents", "tool", "add", None, "execute_tool add"),
    ("smolagents", "final_answer", "final_answer", None, "final_answer"),
])
def test_the_naming_rule_per_step_kind(framework: str, kind: str, name: str, index: int | None,
                                       expected: str) -> None:
    assert c.span_name(c.step_attributes(framework, kind, name, index=index)) == expected


def test_the_naming_rule_without_the_optional_parts() -> None:
    assert c.span_name({c.STEP_KIND: "action", c.STEP_NAME: "calc"}) == "Step"  # no index
    # No gen_ai.operation.name (a record written before it existed): the kind's default operation.
    assert c.span_name({c.FRAMEWORK: "langgraph", c.STEP_KIND: "run", c.STEP_NAME: "g"}) == "invoke_workflow g"
    assert c.span_name({c.STEP_KIND: "tool", c.STEP_NAME: "add"}) == "execute_tool add"
    assert c.span_name({c.STEP_NAME: "x"}) == "x"  # not a step
    assert c.span_name({}) == "step"

