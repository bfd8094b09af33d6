"""An async research workflow: one `Send` per topic, each running a researcher subgraph in parallel, then a
report writer that fails once on a flaky service and is retried. Traced with no code change:

    MASSGEN_TRACING=1 python examples/langgraph/fanout_subgraph.py
"""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated, Any, TypedDict

from _model import example_model
from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.types import RetryPolicy, Send, StreamWriter
from opentelemetry import trace

tracer = trace.get_tracer(__name__)  # your own spans, with the plain OpenTelemetry API


def notes_for(messages: list[BaseMessage]) -> str:
    return f"Key facts about {messages[-1].content.split(':')[-1].strip()}: three findings, two open questions."


model = example_model(responder=notes_for, delay=0.5)


class Research(TypedDict):
    question: str
    topics: list[str]
    notes: Annotated[list[str], operator.add]
    report: str


class Topic(TypedDict):
    topic: str
    notes: Annotated[list[str], operator.add]


async def search(state: Topic, writer: StreamWriter) -> dict[str, Any]:
    # `writer` and `config` as parameters rather than get_stream_writer()/implicit context: async
    # nodes get no config context before Python 3.11, and this example runs on 3.10 too.
    writer({"searching": state["topic"]})
    await asyncio.sleep(0.3)  # a web search
    return {}


async def summarize(state: Topic, config: RunnableConfig) -> dict[str, Any]:
    reply = await model.ainvoke(f"Summarize what is known about: {state['topic']}", config)
    return {"notes": [str(reply.content)]}


researcher = StateGraph(Topic)
researcher.add_node("search", search)
researcher.add_node("summarize", summarize)
researcher.add_edge(START, "search")
researcher.add_edge("search", "summarize")
research_one = researcher.compile(name="researcher")


async def plan(state: Research) -> dict[str, Any]:
    return {"topics": ["solar storage", "wind forecasting", "grid pricing"]}


def fan_out(state: Research) -> list[Send]:
    return [Send("research", {"topic": topic, "notes": []}) for topic in state["topics"]]


calls = {"write_report": 0}


async def write_report(state: Research) -> dict[str, Any]:
    calls["write_report"] += 1
    if calls["write_report"] == 1:
        raise ConnectionError("report service timed out")
    with tracer.start_as_current_span("format report"):  # nests under the write_report node (Python 3.11+)
        return {"report": "\n".join(f"- {note}" for note in sorted(state["notes"]))}


graph = StateGraph(Research)
graph.add_node("plan", plan)
graph.add_node("research", research_one)  # the subgraph runs once per Send, in parallel
graph.add_node("write_report", write_report, retry_policy=RetryPolicy(max_attempts=3, initial_interval=0.5))
graph.add_edge(START, "plan")
graph.add_conditional_edges("plan", fan_out, ["research"])
graph.add_edge("research", "write_report")
graph.add_edge("write_report", END)
app = graph.compile(name="energy_research")


async def main() -> None:
    result = await app.ainvoke({"question": "What matters for a renewable grid?", "topics": [], "notes": []})
    print(result["report"])


if __name__ == "__main__":
    asyncio.run(main())
