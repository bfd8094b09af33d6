"""Graphs and agents for the MassGen tool tests that the examples do not cover (failures)."""

from __future__ import annotations

from typing import Any

from langgraph.graph import START, MessagesState, StateGraph


def make_graph_leaking_a_key() -> Any:
    """A graph whose only node raises with an API key in the message."""

    def login(state: MessagesState) -> dict[str, Any]:
        raise PermissionError("denied for sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t")

    graph = StateGraph(MessagesState)
    graph.add_node("login", login)
    graph.add_edge(START, "login")
    return graph.compile(name="leaky_graph")


def make_failing_graph() -> Any:
    """A graph whose only node raises."""

    def lookup(state: MessagesState) -> dict[str, Any]:
        raise ValueError("no notes today")

    graph = StateGraph(MessagesState)
    graph.add_node("lookup", lookup)
    graph.add_edge(START, "lookup")
    return graph.compile(name="failing_graph")


def make_echo_graph() -> Any:
    """A graph with a plain state key, for `input_key` / `output_key`."""
    from typing import TypedDict

    class State(TypedDict, total=False):
        question: str
        answer: str

    def answer(state: State) -> dict[str, Any]:
        return {"answer": f"echo: {state['question']}"}

    graph = StateGraph(State)
    graph.add_node("answer", answer)
    graph.add_edge(START, "answer")
    return graph.compile(name="echo_graph")


ECHO_GRAPH = make_echo_graph()  # a graph object, not a factory


def make_settings() -> dict[str, Any]:
    """Returns neither a graph nor an agent: a common slip."""
    return {"model": "gpt-4o-mini"}
