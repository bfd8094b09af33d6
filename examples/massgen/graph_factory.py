"""An example LangGraph workflow for `massgen_tracing.massgen.langgraph_tool`: a model that may search the
team's notes (a tool node) before it answers. Works against any OpenAI-compatible endpoint.
"""

from __future__ import annotations

from typing import Any

from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

NOTES = {
    "tracing": "Every framework step is an OpenTelemetry span; MassGen shows them live.",
    "massgen": "MassGen runs several agents on one task; they answer, vote and present.",
}


@tool
def search_notes(query: str) -> str:
    """Search the team's notes for a topic."""
    hits = [text for key, text in NOTES.items() if key in query.lower()]
    return " ".join(hits) or "No notes on that yet."


def make_graph(base_url: str | None = None, model: str = "gpt-4o-mini") -> Any:
    """The compiled graph. The API key comes from OPENAI_API_KEY."""
    # stream_usage: streamed replies report token usage too, so the steps show (and record) token counts.
    llm = ChatOpenAI(model=model, base_url=base_url, temperature=0, stream_usage=True).bind_tools([search_notes])

    # A plain function works in both modes of the tool (astream by default, stream with `sync: true`).
    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [llm.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode([search_notes]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    return graph.compile(name="research_graph")
