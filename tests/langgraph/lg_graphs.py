"""Small graphs the LangGraph tests share: as users write them, with no tracing code."""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel
from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from massgen_tracing.testing.langchain_models import ScriptedChatModel, tool_call


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def react_model(**kwargs: object) -> ScriptedChatModel:
    """Calls `add(1, 2)`, then answers."""
    return ScriptedChatModel(replies=[[tool_call("add", {"a": 1, "b": 2})], "The sum is 3."], **kwargs)


def react_graph(model: BaseChatModel, name: str = "react") -> CompiledStateGraph:
    """The ReAct loop, hand-built: agent -> (tools -> agent)* -> end."""
    bound = model.bind_tools([add])

    def agent(state: MessagesState) -> dict[str, object]:
        return {"messages": [bound.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([add]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(name=name)


REACT_TREE = """\
run react
  node agent
    llm scripted-model
  node tools
    tool add
  node agent
    llm scripted-model"""

# The same tree by span name: the convention's naming rule (`convention.span_name`).
REACT_NAMES = """\
invoke_workflow react
  agent
    chat scripted-model
  tools
    execute_tool add
  agent
    chat scripted-model"""
