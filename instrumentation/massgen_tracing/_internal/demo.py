"""`massgen-trace demo`: a LangGraph workflow and a smolagents agent, driven by scripted models, traced live.

Offline by construction: no key, no network; spans go wherever the OTEL_* variables point.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

DEFAULT_FILE = "massgen-trace-demo.jsonl"


def _langgraph_demo(pace: float) -> str:
    from langchain_core.messages import HumanMessage
    from langchain_core.tools import tool
    from langgraph.graph import END, START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition

    from massgen_tracing.testing.langchain_models import ScriptedChatModel, tool_call

    @tool
    def search(query: str) -> str:
        """Search the team wiki."""
        time.sleep(pace)
        return f"3 pages about {query!r}: tracing spans nest under graph nodes."

    @tool
    def word_count(text: str) -> int:
        """Count the words in a text."""
        return len(text.split())

    model = ScriptedChatModel(
        replies=[
            [tool_call("search", {"query": "live tracing"})],
            [tool_call("word_count", {"text": "spans nest under graph nodes"})],
            "Live tracing shows each node, model call and tool as it happens; the wiki summary has 5 words.",
            "Summary: every LangGraph step is a span, visible live and in Jaeger or Phoenix.",
        ],
        model_name="scripted-gpt",
        streaming=True,
        words_per_chunk=2,
        delay=pace,
        chunk_delay=pace / 10,
    )
    agent_model = model.bind_tools([search, word_count])

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [agent_model.invoke(state["messages"])]}

    def writer(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([search, word_count]))
    builder.add_node("writer", writer)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition, {"tools": "tools", END: "writer"})
    builder.add_edge("tools", "agent")
    builder.add_edge("writer", END)
    graph = builder.compile(name="research_assistant")
    result = graph.invoke({"messages": [HumanMessage("How does live tracing help debugging?")]})
    return str(result["messages"][-1].content)


def _smolagents_demo(pace: float) -> str:
    from massgen_tracing.testing.smolagents_models import ScriptedModel, Text, final_answer, tool_call
    from smolagents import ToolCallingAgent, tool

    @tool  # type: ignore[untyped-decorator]  # smolagents' decorator is untyped
    def get_weather(city: str) -> str:
        """Current weather for a city.

        Args:
            city: the city name
        """
        time.sleep(pace)
        return f"{city}: 18°C, light rain"

    @tool  # type: ignore[untyped-decorator]  # smolagents' decorator is untyped
    def convert_to_fahrenheit(celsius: float) -> float:
        """Convert a temperature.

        Args:
            celsius: degrees Celsius
        """
        return celsius * 9 / 5 + 32

    model = ScriptedModel(
        [
            Text("1. Look up the weather in Paris.\n2. Convert the temperature.\n3. Answer."),
            tool_call("get_weather", city="Paris"),
            tool_call("convert_to_fahrenheit", celsius=18),
            final_answer("Paris: 18°C (64.4°F), light rain — take an umbrella."),
        ],
        model_id="scripted-qwen",
        delay=pace,
    )
    agent = ToolCallingAgent(tools=[get_weather, convert_to_fahrenheit], model=model, max_steps=6,
                             planning_interval=10, name="weather_agent", verbosity_level=0)
    return str(agent.run("What's the weather in Paris, in Fahrenheit?"))


def run_demo(*, framework: str = "both", pace: float = 0.15, file: str | None = None,
             console: str | None = None) -> int:
    import massgen_tracing
    from massgen_tracing._internal import setup

    path: str | None
    if setup.current() is None:
        path = file or os.environ.get("MASSGEN_TRACING_FILE") or DEFAULT_FILE
        massgen_tracing.configure(file=path, console=console)
    else:  # MASSGEN_TRACING=1 already configured this process: keep its choices
        state = setup.current()
        path = state.settings["file"] if state is not None else None
    answers = []
    if framework in ("both", "langgraph"):
        answers.append(("LangGraph", _langgraph_demo(pace)))
    if framework in ("both", "smolagents"):
        answers.append(("smolagents", _smolagents_demo(pace)))
    massgen_tracing.shutdown()
    for name, answer in answers:
        print(f"{name} answered: {answer}")
    if path:
        print(f"step record written to {path} (replay: massgen-trace replay {path})", file=sys.stderr)
    return 0
