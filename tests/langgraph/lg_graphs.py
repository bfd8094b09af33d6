"""Small graphs the LangGraph tests share: as users write them, with no tracing code."""

from __future__ import annotations

import contextlib
from typing import Any

from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from typing_extensions import TypedDict

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


class Docs(BaseRetriever):
    def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
        return [Document(page_content=f"about {query}", metadata={"source": "kb", "score": 0.5})]


class QA(TypedDict, total=False):
    question: str
    answer: str


@tool
def broken(x: int) -> int:
    """Always fails."""
    raise ValueError("tool down")


def qa_graph() -> CompiledStateGraph:
    """A retriever, a prompt template, a model and a failing tool in one node; a failing node after it.

    Its invoke raises `ValueError("no such thing")`.
    """
    prompt = ChatPromptTemplate.from_messages([("system", "Be brief."), ("user", "{question}")])
    model = ScriptedChatModel(replies=["It is 3."])

    def answer(state: QA) -> QA:
        docs = Docs().invoke(state["question"])
        reply = (prompt | model).invoke({"question": f"{state['question']} ({docs[0].page_content})"})
        with contextlib.suppress(ValueError):  # the tool's error run is what matters here
            broken.invoke({"x": 1})
        return {"answer": str(reply.content)}

    def explode(state: QA) -> QA:
        raise ValueError("no such thing")

    builder = StateGraph(QA)
    builder.add_node("answer", answer)
    builder.add_node("explode", explode)
    builder.add_edge(START, "answer")
    builder.add_edge("answer", "explode")
    return builder.compile(name="qa")
