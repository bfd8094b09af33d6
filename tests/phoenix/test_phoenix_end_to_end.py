"""End to end against a real Phoenix: an unmodified program, switched on by environment variables only,
must arrive in Phoenix shaped as the step convention says (docs/convention.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from massgen_tracing._internal import convention as c
from support.phoenix import Phoenix

pytestmark = pytest.mark.slow

# An ordinary user program: no tracing code at all. It imports only the offline scripted models.
USER_SCRIPT = '''\
from langchain_core import tools as langchain_tools
from langchain_core.messages import HumanMessage
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from smolagents import ToolCallingAgent, tool

from massgen_tracing.testing import langchain_models as lc
from massgen_tracing.testing.smolagents_models import ScriptedModel, Text, final_answer, tool_call


@langchain_tools.tool
def get_weather(city: str) -> str:
    """Current weather of a city."""
    return f"Sunny, 21 C in {city}."


model = lc.ScriptedChatModel(
    replies=[[lc.tool_call("get_weather", {"city": "Paris"})], "It is sunny in Paris."]
)
bound = model.bind_tools([get_weather])


def agent(state: MessagesState) -> dict:
    return {"messages": [bound.invoke(state["messages"])]}


builder = StateGraph(MessagesState)
builder.add_node("agent", agent)
builder.add_node("tools", ToolNode([get_weather]))
builder.add_edge(START, "agent")
builder.add_conditional_edges("agent", tools_condition)
builder.add_edge("tools", "agent")
graph = builder.compile(name="weather_graph")
result = graph.invoke({"messages": [HumanMessage("What is the weather in Paris?")]})
print("langgraph:", result["messages"][-1].content)


@tool
def get_forecast(city: str) -> str:
    """Tomorrow's forecast of a city.

    Args:
        city: The city name.
    """
    return f"Rain in {city} tomorrow."


agent_model = ScriptedModel([
    Text("1. Look up the forecast. 2. Answer."),
    tool_call("get_forecast", city="Paris"),
    final_answer("Rain in Paris tomorrow."),
])
smol_agent = ToolCallingAgent(tools=[get_forecast], model=agent_model, name="forecast_agent",
                              planning_interval=10, max_steps=4, verbosity_level=0)
print("smolagents:", smol_agent.run("What is the forecast for Paris?"))
'''

# The whole step tree of each run, children in start order: `kind name #index`, index where the convention
# sets one (node, planning, action). Spans without `massgen.step.kind` (LangChain plumbing such as
# `tools_condition`) are skipped; their step children hang from the nearest step above them.
EXPECTED_TREES = {
    "langgraph": [
        "run weather_graph",
        "  node agent #1",
        "    llm scripted-model",
        "  node tools #2",
        "    tool get_weather",
        "  node agent #3",
        "    llm scripted-model",
    ],
    "smolagents": [
        "run forecast_agent",
        "  planning forecast_agent #1",
        "    llm scripted",
        "  action forecast_agent #1",
        "    llm scripted",
        "    tool get_forecast",
        "  action forecast_agent #2",
        "    llm scripted",
        "    final_answer final_answer",
    ],
}
# The same trees by span name, as Phoenix lists them: one naming rule for both frameworks
# (docs/convention.md, "Span names").
EXPECTED_NAME_TREES = {
    "langgraph": [
        "invoke_workflow weather_graph",
        "  agent",
        "    chat scripted-model",
        "  tools",
        "    execute_tool get_weather",
        "  agent",
        "    chat scripted-model",
    ],
    "smolagents": [
        "invoke_agent forecast_agent",
        "  plan forecast_agent",
        "    chat scripted",
        "  Step 1",
        "    chat scripted",
        "    execute_tool get_forecast",
        "  Step 2",
        "    chat scripted",
        "    final_answer",
    ],
}
EXPECTED_STEPS = Counter({
    ("langgraph", "run", "weather_graph"): 1,
    ("langgraph", "node", "agent"): 2,
    ("langgraph", "node", "tools"): 1,
    ("langgraph", "llm", "scripted-model"): 2,
    ("langgraph", "tool", "get_weather"): 1,
    ("smolagents", "run", "forecast_agent"): 1,
    ("smolagents", "planning", "forecast_agent"): 1,
    ("smolagents", "action", "forecast_agent"): 2,
    ("smolagents", "llm", "scripted"): 3,
    ("smolagents", "tool", "get_forecast"): 1,
    ("smolagents", "final_answer", "final_answer"): 1,
})
# docs/convention.md, "Defaults per step kind"; Phoenix moves `openinference.span.kind` into `span_kind`.
EXPECTED_SPAN_KIND = {
    "run": "AGENT",
    "node": "CHAIN",
    "planning": "CHAIN",
    "action": "CHAIN",
    "llm": "LLM",
    "tool": "TOOL",
    "final_answer": "CHAIN",
}
# Completion tokens of each model call in start order, by the scripted models' documented rules.
# ScriptedChatModel: words of the reply text + 1 per tool call. ScriptedModel: words of the reply text +
# each tool call's name and arguments JSON (`final_answer {"answer": "Rain in Paris tomorrow."}` is 6).
EXPECTED_COMPLETION_TOKENS = {"langgraph": [1, 5], "smolagents": [7, 3, 6]}
# ScriptedChatModel's prompt tokens are the words of the request: the question (6), then the question,
# the empty tool-call turn and the tool result "Sunny, 21 C in Paris." (6 + 0 + 5). smolagents' own
# prompts are long and version-dependent, so only their consistency is checked.
EXPECTED_LANGGRAPH_PROMPT_TOKENS = [6, 11]

# The whole program, including interpreter start, imports and the exit flush, takes ~4 s idle.
PROGRAM_TIMEOUT = 120.0
# Spans are flushed when the program exits; Phoenix inserts them in the background every 0.1 s.
ARRIVAL_DEADLINE = 30.0
POLL_INTERVAL = 0.5

# Names come from the one convention registry; the values they must carry are spelled out above.
STEP_KIND, FRAMEWORK, STEP_NAME, STEP_INDEX = c.STEP_KIND, c.FRAMEWORK, c.STEP_NAME, c.STEP_INDEX
TOKEN_COUNTS = (c.LLM_TOKEN_PROMPT, c.LLM_TOKEN_COMPLETION, c.LLM_TOKEN_TOTAL, c.GEN_AI_INPUT_TOKENS,
                c.GEN_AI_OUTPUT_TOKENS)


@dataclass(frozen=True)
class TracedRun:
    project: str
    spans: list[dict[str, Any]]
    stdout: str
    stderr: str

    @property
    def steps(self) -> list[dict[str, Any]]:
        return [s for s in self.spans if STEP_KIND in s["attributes"]]


def _program_env(phoenix: Phoenix, project: str) -> dict[str, str]:
    # Nothing from the developer's shell may steer the program: tracing must come from these variables
    # alone, and a stray LANGSMITH_TRACING would send LangChain runs to the internet.
    inherited = {k: v for k, v in os.environ.items()
                 if not k.startswith(("MASSGEN_", "OTEL_", "PHOENIX_", "LANGSMITH_", "LANGCHAIN_"))}
    return {
        **inherited,
        "MASSGEN_TRACING": "1",
        "PHOENIX_COLLECTOR_ENDPOINT": phoenix.base_url,
        "PHOENIX_PROJECT_NAME": project,
        "MASSGEN_TRACING_CONSOLE": "plain",
        # As everywhere under the test suite (tests/conftest.py): an error inside massgen-tracing
        # crashes the program with its traceback instead of being logged and silently losing spans.
        "MASSGEN_TRACING_STRICT": "1",
    }


def _wait_for_spans(phoenix: Phoenix, project: str, expected_steps: int) -> list[dict[str, Any]]:
    """Poll until the expected number of step spans has arrived and the total stops changing.

    Returns what arrived by the deadline rather than raising, so the assertions can show exactly
    which steps are missing.
    """
    deadline = time.monotonic() + ARRIVAL_DEADLINE
    previous = -1
    while True:
        spans = phoenix.spans(project)
        steps = sum(1 for s in spans if STEP_KIND in s["attributes"])
        if (steps >= expected_steps and len(spans) == previous) or time.monotonic() > deadline:
            return spans
        previous = len(spans)
        time.sleep(POLL_INTERVAL)


@pytest.fixture(scope="module")
def traced_run(phoenix: Phoenix, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TracedRun]:
    workdir: Path = tmp_path_factory.mktemp("phoenix_program")
    script = workdir / "weather_program.py"
    script.write_text(USER_SCRIPT)
    project = f"massgen-e2e-{uuid.uuid4().hex[:12]}"  # unique: a reused Phoenix must not mix runs
    done = subprocess.run([sys.executable, str(script)], cwd=workdir, env=_program_env(phoenix, project),
                          capture_output=True, text=True, timeout=PROGRAM_TIMEOUT, check=False)
    if done.returncode != 0:
        pytest.fail(f"the traced program exited with {done.returncode}\n--- stdout\n{done.stdout}\n"
                    f"--- stderr\n{done.stderr}", pytrace=False)
    spans = _wait_for_spans(phoenix, project, sum(EXPECTED_STEPS.values()))
    yield TracedRun(project, spans, done.stdout, done.stderr)


def _step_trees(run: TracedRun, *, names: bool = False) -> dict[str, list[str]]:
    """Each run's step tree rendered as indented lines (`kind name #index`, or with `names` the span
    name), keyed by the framework of its root."""
    by_id = {s["context"]["span_id"]: s for s in run.spans}
    children: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for step in run.steps:
        parent = step["parent_id"]
        # Climb over spans without a step kind to the nearest step ancestor (None for a root).
        while parent is not None and parent in by_id and STEP_KIND not in by_id[parent]["attributes"]:
            parent = by_id[parent]["parent_id"]
        children[parent].append(step)

    def render(step: dict[str, Any], depth: int) -> Iterator[str]:
        a = step["attributes"]
        index = f" #{a[STEP_INDEX]}" if a[STEP_KIND] in ("node", "planning", "action") else ""
        yield f"{'  ' * depth}{step['name']}" if names else f"{'  ' * depth}{a[STEP_KIND]} {a[STEP_NAME]}{index}"
        for child in sorted(children[step["context"]["span_id"]], key=lambda s: s["start_time"]):
            yield from render(child, depth + 1)

    return {root["attributes"][FRAMEWORK]: list(render(root, 0)) for root in children[None]}


def test_program_runs_unchanged_with_tracing_switched_on(traced_run: TracedRun) -> None:
    assert traced_run.stdout.splitlines() == [
        "langgraph: It is sunny in Paris.",
        "smolagents: Rain in Paris tomorrow.",
    ]


def test_phoenix_files_the_spans_under_the_project_named_in_the_environment(
    phoenix: Phoenix, traced_run: TracedRun
) -> None:
    assert traced_run.project in phoenix.project_names()
    assert traced_run.spans, f"project {traced_run.project} exists but holds no span"


def test_every_langgraph_and_smolagents_step_arrives_as_one_step_span(traced_run: TracedRun) -> None:
    got = Counter(
        (s["attributes"].get(FRAMEWORK), s["attributes"][STEP_KIND], s["attributes"].get(STEP_NAME))
        for s in traced_run.steps
    )
    assert sorted(got.items()) == sorted(EXPECTED_STEPS.items())


def test_phoenix_shows_the_openinference_span_kind_of_each_step_kind(traced_run: TracedRun) -> None:
    got = {(s["attributes"][STEP_KIND], s["span_kind"]) for s in traced_run.steps}
    assert sorted(got) == sorted(EXPECTED_SPAN_KIND.items())


def test_each_run_is_one_trace_whose_only_root_is_its_run_step(traced_run: TracedRun) -> None:
    traces: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for span in traced_run.spans:
        traces[span["context"]["trace_id"]].append(span)
    roots = {
        trace_id: [
            (s["attributes"].get(FRAMEWORK), s["attributes"].get(STEP_KIND), s["attributes"].get(STEP_NAME))
            for s in spans if s["parent_id"] is None
        ]
        for trace_id, spans in traces.items()
    }
    assert sorted(r for rs in roots.values() for r in rs) == [
        ("langgraph", "run", "weather_graph"),
        ("smolagents", "run", "forecast_agent"),
    ], roots
    assert all(len(rs) == 1 for rs in roots.values()), roots


def test_every_parent_is_a_span_of_the_same_trace(traced_run: TracedRun) -> None:
    ids_by_trace: dict[str, set[str]] = defaultdict(set)
    for span in traced_run.spans:
        ids_by_trace[span["context"]["trace_id"]].add(span["context"]["span_id"])
    orphans = [
        (s["name"], s["attributes"].get(STEP_KIND), s["parent_id"])
        for s in traced_run.spans
        if s["parent_id"] is not None and s["parent_id"] not in ids_by_trace[s["context"]["trace_id"]]
    ]
    assert orphans == []


def test_steps_nest_as_run_then_steps_then_model_and_tool_calls(traced_run: TracedRun) -> None:
    assert _step_trees(traced_run) == EXPECTED_TREES


def test_both_frameworks_name_their_steps_by_the_same_rule(traced_run: TracedRun) -> None:
    assert _step_trees(traced_run, names=True) == EXPECTED_NAME_TREES


def test_llm_spans_carry_token_counts_in_both_conventions(traced_run: TracedRun) -> None:
    completions: dict[str, list[int]] = defaultdict(list)
    prompts: dict[str, list[int]] = defaultdict(list)
    for span in traced_run.steps:
        a = span["attributes"]
        if a[STEP_KIND] != "llm":
            continue
        counts = {k: a.get(k) for k in TOKEN_COUNTS}
        assert all(isinstance(v, int) and v > 0 for v in counts.values()), (span["name"], counts)
        prompt, completion = counts[c.LLM_TOKEN_PROMPT], counts[c.LLM_TOKEN_COMPLETION]
        assert counts[c.LLM_TOKEN_TOTAL] == prompt + completion, (span["name"], counts)
        # Phoenix reads the OpenInference names, GenAI backends the gen_ai ones: both must agree.
        assert (counts[c.GEN_AI_INPUT_TOKENS], counts[c.GEN_AI_OUTPUT_TOKENS]) == (prompt, completion), (
            span["name"], counts)
        prompts[a[FRAMEWORK]].append(prompt)
        completions[a[FRAMEWORK]].append(completion)
    assert dict(completions) == EXPECTED_COMPLETION_TOKENS
    assert prompts["langgraph"] == EXPECTED_LANGGRAPH_PROMPT_TOKENS
