"""A ReAct agent: the model calls tools until it can answer. Traced with no code change:

    MASSGEN_TRACING=1 python examples/langgraph/react_agent.py
"""

from __future__ import annotations

import time
from typing import Any

from _model import example_model
from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from massgen_tracing.testing.langchain_models import tool_call


@tool
def get_weather(city: str) -> str:
    """Today's weather for a city (a slow web service)."""
    time.sleep(1.0)
    return {"paris": "sunny, 24°C", "oslo": "snow, -3°C"}.get(city.lower(), "cloudy, 15°C")


@tool
def convert_to_fahrenheit(celsius: float) -> float:
    """Convert a temperature from Celsius to Fahrenheit."""
    return round(celsius * 9 / 5 + 32, 1)


def build_agent() -> Any:
    model = example_model([
        [tool_call("get_weather", {"city": "Paris"})],
        [tool_call("convert_to_fahrenheit", {"celsius": 24})],
        "Paris is sunny today: 24°C, which is 75.2°F.",
    ]).bind_tools([get_weather, convert_to_fahrenheit])

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode([get_weather, convert_to_fahrenheit]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    return graph.compile(name="weather_agent")


def main() -> None:
    agent = build_agent()
    result = agent.invoke({"messages": [("user", "What is the weather in Paris today, in Fahrenheit?")]})
    print(result["messages"][-1].content)


if __name__ == "__main__":
    main()
