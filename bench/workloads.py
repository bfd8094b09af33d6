"""Benchmark workloads (LangGraph, smolagents) and the tracing configurations compared on them.

Each configuration is set up and torn down around every measured batch so they can be interleaved.
"""

from __future__ import annotations

import operator
import os
import tempfile
import time
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from massgen_tracing._internal.processor import LiveStepProcessor
from massgen_tracing._internal.redact import Redactor
from massgen_tracing._internal.sinks import JsonlSink

Workload = Callable[[], Any]


# --- LangGraph ----------------------------------------------------------------------------------
def langgraph_react(model_latency_s: float = 0.0) -> Workload:
    from langchain_core.messages import HumanMessage
    from langchain_core.tools import tool
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition

    from massgen_tracing.testing.langchain_models import ScriptedChatModel, tool_call

    @tool
    def search(query: str) -> str:
        """Search."""
        return f"results for {query}"

    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    def make_graph() -> Any:
        model = ScriptedChatModel(replies=[
            [tool_call("search", {"query": "otel"})],
            [tool_call("add", {"a": 2, "b": 3})],
            "The answer is 5, according to the search results about OpenTelemetry spans.",
        ], model_name="bench-model", delay=model_latency_s)
        bound = model.bind_tools([search, add])

        def agent(state: MessagesState) -> dict[str, Any]:
            return {"messages": [bound.invoke(state["messages"])]}

        g = StateGraph(MessagesState)
        g.add_node("agent", agent)
        g.add_node("tools", ToolNode([search, add]))
        g.add_edge(START, "agent")
        g.add_conditional_edges("agent", tools_condition)
        g.add_edge("tools", "agent")
        return g.compile(name="react")

    def run() -> Any:
        # A fresh scripted model per run: its script is consumed by each run.
        return make_graph().invoke({"messages": [HumanMessage("What is 2 + 3? Search first.")]})

    return run


class FanState(TypedDict):  # module level: LangGraph resolves these annotations with get_type_hints
    topics: list[str]
    results: Annotated[list[str], operator.add]


class FanItem(TypedDict):
    topic: str


def langgraph_fanout() -> Workload:
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Send

    def plan(state: FanState) -> dict[str, Any]:
        return {}

    def fan(state: FanState) -> list[Any]:  # not list[Send]: LangGraph evaluates this hint at runtime
        return [Send("work", {"topic": t}) for t in state["topics"]]

    def work(item: FanItem) -> dict[str, Any]:
        return {"results": [item["topic"].upper()]}

    def reduce(state: FanState) -> dict[str, Any]:
        return {"results": [",".join(sorted(state["results"]))]}

    g = StateGraph(FanState)
    g.add_node("plan", plan)
    g.add_node("work", work)
    g.add_node("reduce", reduce)
    g.add_edge(START, "plan")
    g.add_conditional_edges("plan", fan, ["work"])
    g.add_edge("work", "reduce")
    g.add_edge("reduce", END)
    graph = g.compile(name="fanout")

    def run() -> Any:
        return graph.invoke({"topics": [f"t{i}" for i in range(8)], "results": []})

    return run


# --- smolagents ---------------------------------------------------------------------------------
def smolagents_tool_calling() -> Workload:
    from massgen_tracing.testing.smolagents_models import ScriptedModel, final_answer, tool_call
    from smolagents import ToolCallingAgent, tool

    @tool
    def lookup(city: str) -> str:
        """Weather lookup.

        Args:
            city: the city
        """
        return f"{city}: 18C"

    import smolagents

    # OpenInference wraps only Model classes it finds in the smolagents module at instrument() time; put
    # the scripted model there so "OpenInference alone" traces model calls too and the comparison is fair.
    smolagents.ScriptedModel = ScriptedModel  # type: ignore[attr-defined]

    def run() -> Any:
        model = ScriptedModel([tool_call("lookup", city="Paris"), tool_call("lookup", city="Oslo"),
                               final_answer("Paris 18C, Oslo 18C")], model_id="bench-model")
        agent = ToolCallingAgent(tools=[lookup], model=model, max_steps=5, verbosity_level=0)
        return agent.run("Weather in Paris and Oslo?")

    return run


def smolagents_code_agent() -> Workload:
    from massgen_tracing.testing.smolagents_models import ScriptedModel, code
    from smolagents import CodeAgent, tool

    @tool
    def price(item: str) -> float:
        """Price of an item.

        Args:
            item: the item
        """
        return {"bread": 2.25, "milk": 1.2}.get(item, 0.0)

    import smolagents

    smolagents.ScriptedModel = ScriptedModel  # type: ignore[attr-defined]  # see smolagents_tool_calling

    def run() -> Any:
        model = ScriptedModel([
            code('total = price("bread") + price("milk")\nprint(total)'),
            code("final_answer(round(total, 2))"),
        ], model_id="bench-model")
        agent = CodeAgent(tools=[price], model=model, max_steps=4, verbosity_level=0)
        return agent.run("What do bread and milk cost together?")

    return run


WORKLOADS: dict[str, dict[str, Callable[[], Workload]]] = {
    "langgraph": {"ReAct loop (2 tool calls)": langgraph_react, "Send fan-out (8 branches)": langgraph_fanout,
                  # The same loop with the model taking 20 ms per reply (a real API takes 10-100x longer):
                  # the program waits, as real ones do, and the live pipeline's threads work meanwhile.
                  "ReAct loop, model replies in 20 ms": lambda: langgraph_react(0.02)},
    "smolagents": {"ToolCallingAgent (2 tool calls)": smolagents_tool_calling,
                   "CodeAgent (2 code steps, 2 tool calls)": smolagents_code_agent},
}


# --- tracing configurations ----------------------------------------------------------------------
class _SlowSink:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.abandoned = False

    def handle(self, record: Any) -> None:
        # Once its configuration is torn down, the backlog it was left with must not keep a thread
        # waking every 50 ms through the later measurements.
        if not self.abandoned:
            time.sleep(self.seconds)

    def close(self) -> None:
        pass


def _null_exporter() -> Any:
    from run import NullExporter  # bench/run.py

    return NullExporter()


def _openinference(fw: str) -> Any:
    if fw == "langgraph":
        from openinference.instrumentation.langchain import LangChainInstrumentor

        return LangChainInstrumentor()
    from openinference.instrumentation.smolagents import SmolagentsInstrumentor

    return SmolagentsInstrumentor()


def _ours(fw: str) -> Any:
    if fw == "langgraph":
        from massgen_tracing.langgraph import LangGraphInstrumentor

        return LangGraphInstrumentor()
    from massgen_tracing.smolagents import SmolagentsInstrumentor

    return SmolagentsInstrumentor()


def setups(fw: str) -> dict[str, tuple[Callable[[], Any], Callable[[Any], None]]]:
    """label -> (set up, tear down). All traced ones export through a BatchSpanProcessor to a null exporter.

    "default" is what `MASSGEN_TRACING=1` runs when stderr is not a terminal: our instrumentor, redaction
    and the live processor with the plain terminal sink (written to /dev/null); "live terminal view" is
    what it runs on a terminal (rich's live tree, rendered to /dev/null as if to a terminal); "+ JSONL"
    adds MASSGEN_TRACING_FILE; "no sinks" keeps instrumentation and redaction only, separating the cost
    of the live view from the instrumentation's.
    """

    def untraced() -> Any:
        return None

    def none_down(_: Any) -> None:
        pass

    def oi_up() -> Any:
        tp = TracerProvider(shutdown_on_exit=False)
        tp.add_span_processor(BatchSpanProcessor(_null_exporter()))
        inst = _openinference(fw)
        inst.instrument(tracer_provider=tp)
        return inst, tp, None

    def ours_up(*, console: bool = True, jsonl: bool = False, slow: bool = False,
                live: bool = False) -> Callable[[], Any]:
        def up() -> Any:
            from rich.console import Console

            from massgen_tracing._internal.console import LiveConsoleSink, PlainConsoleSink

            tp = TracerProvider(shutdown_on_exit=False)
            devnull = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115  # closed in down()
            tmp = tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False)  # noqa: SIM115  # path only
            tmp.close()
            sinks: list[Any] = []
            if live:  # what a terminal gets: rich's live tree, each finished run printed once
                sinks.append(LiveConsoleSink(Console(file=devnull, force_terminal=True, width=120)))
            elif console:
                sinks.append(PlainConsoleSink(devnull))
            if jsonl:
                sinks.append(JsonlSink(tmp.name))
            if slow:
                sinks.append(_SlowSink(0.05))
            proc = LiveStepProcessor(sinks, redactor=Redactor(), shutdown_timeout=0.2)
            tp.add_span_processor(BatchSpanProcessor(_null_exporter()))  # in configure()'s order
            tp.add_span_processor(proc)
            inst = _ours(fw)
            inst.instrument(tracer_provider=tp)
            return inst, tp, (proc, devnull, tmp.name, sinks)

        return up

    def down(handle: Any) -> None:
        inst, tp, extra = handle
        inst.uninstrument()
        tp.shutdown()
        if extra is not None:
            proc, devnull, path, sinks = extra
            proc.shutdown()
            for sink in sinks:
                if isinstance(sink, _SlowSink):
                    sink.abandoned = True
            devnull.close()
            os.unlink(path)

    return {
        "untraced": (untraced, none_down),
        "openinference alone": (oi_up, down),
        "massgen-tracing, no sinks": (ours_up(console=False), down),
        "massgen-tracing (default: console)": (ours_up(), down),
        "massgen-tracing, live terminal view": (ours_up(live=True), down),
        "massgen-tracing + JSONL": (ours_up(jsonl=True), down),
        "massgen-tracing + 50 ms/record sink": (ours_up(slow=True), down),
    }
