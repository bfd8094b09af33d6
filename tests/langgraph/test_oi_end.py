"""`_oi_end.update_span` against OpenInference's own `_update_span`: same attributes, same order, same status.

Every run that ends while these graphs execute is written twice more, onto two scratch spans: once by
OpenInference's function and once by ours; the two must agree attribute for attribute.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from lg_graphs import REACT_TREE, qa_graph, react_graph, react_model
from lg_tracing import start_tracing
from openinference.instrumentation import OITracer, TraceConfig, using_attributes
from openinference.instrumentation.langchain import _tracer as oi
from opentelemetry.sdk.trace import TracerProvider

import massgen_tracing.langgraph._tracer as lg_tracer
from massgen_tracing.langgraph import _oi_end
from massgen_tracing.testing.openai_server import ScriptedOpenAIServer, Text, ToolCall, ToolCalls

# One provider for every scratch span (no processors: nothing is exported); a provider per span would
# register an exit hook each.
_SCRATCH = TracerProvider(shutdown_on_exit=False).get_tracer("scratch")


def _written(update: Any, run: Any, config: TraceConfig) -> tuple[Any, ...]:
    scratch = OITracer(_SCRATCH, config=config).start_span("scratch")
    update(scratch, run)
    sdk = scratch.__wrapped__
    return (list(sdk.attributes.items()), sdk.status.status_code, sdk.status.description,
            dict(scratch._self_important_attributes))


@pytest.fixture(params=["captured", "hidden"])
def compared(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Compares both functions on every run that ends; yields the names of the runs compared.

    Twice: with content captured, and with OpenInference's masking switches on (`TraceConfig.mask`).
    """
    config = TraceConfig() if request.param == "captured" else TraceConfig(
        hide_inputs=True, hide_outputs=True, hide_llm_invocation_parameters=True, hide_input_text=True)
    _, stop = start_tracing(monkeypatch, config=config)
    names: list[str] = []
    real = _oi_end.update_span

    def both(span: Any, run: Any, *, status: bool = True) -> None:
        config = span._self_config
        theirs, ours = _written(oi._update_span, run, config), _written(_oi_end.update_span, run, config)
        assert ours == theirs, run.name
        names.append(run.name)
        real(span, run, status=status)

    monkeypatch.setattr(lg_tracer, "update_span", both)
    try:
        yield names
    finally:
        stop()


def test_react_loop_with_a_scripted_model(compared: list[str]) -> None:
    with using_attributes(session_id="s-1", user_id="u-1", metadata={"team": "x"}, tags=["t"]):
        react_graph(react_model(streaming=True, temperature=0.5)).invoke({"messages": [("user", "What is 1 + 2?")]})
    assert compared.count("ScriptedChatModel") == 2 and "add" in compared and "react" in compared


def test_chat_openai_with_invocation_parameters_and_usage(compared: list[str]) -> None:
    from langchain_openai import ChatOpenAI

    script = [ToolCalls([ToolCall("add", {"a": 1, "b": 2})]), Text("The sum is 3.")]
    with ScriptedOpenAIServer(script) as server:
        model = ChatOpenAI(base_url=server.base_url, api_key="test", model="scripted", max_retries=0,
                           temperature=0.2, stream_usage=True)
        react_graph(model).invoke({"messages": [("user", "What is 1 + 2?")]})
    assert compared.count("ChatOpenAI") == 2


def test_prompt_template_retriever_tool_error_and_a_failing_node(compared: list[str]) -> None:
    with pytest.raises(ValueError, match="no such thing"):
        qa_graph().invoke({"question": "What is 1 + 2?"})
    assert {"Docs", "ChatPromptTemplate", "ScriptedChatModel", "broken", "answer", "explode", "qa"} <= set(compared)


class Colour(enum.Enum):
    RED = "red"


@pytest.mark.parametrize("pairs", [
    [("a", {"b": {"c": 1, "d": None}, "e": [1, 2]}), ("f", Colour.RED), ("g", None)],
    [("m", [{"role": "user", "content": "hi"}, {"role": "ai", "tool": {"name": "add"}}]), ("n", "x")],
    [("a", 1), ("a", 2), ("b", [])],
    # A list that mixes mappings with anything else: flattening fails at that level, which stops it.
    [("x", 1), ("m", [{"k": 1}, "not a mapping", {"k": 3}]), ("y", 2)],
    [("outer", {"m": [{"k": 1}, 7], "after": 1}), ("y", 2)],
])
def test_flatten_gives_openinferences_pairs_in_its_order(pairs: list[tuple[str, Any]],
                                                         caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        theirs = list(oi._flatten(iter(pairs)))
        their_logs = len(caplog.records)
        ours = _oi_end._flatten(iter(pairs))
    assert ours == theirs
    assert len(caplog.records) == 2 * their_logs  # each failure logged once by each


def test_an_update_span_without_flatten_is_used_as_it_is() -> None:
    def update(span: Any, run: Any) -> None:
        span.set_attribute("k", run)

    assert _oi_end._rebuilt(update) is None
    assert _oi_end._rebuilt(oi._update_span) is not None


def test_a_failing_end_update_leaves_the_graph_and_its_spans_intact(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    traced, stop = start_tracing(monkeypatch)

    def broken(self: Any, attributes: Any) -> None:
        raise RuntimeError("bug in massgen-tracing")

    monkeypatch.setattr(_oi_end._BulkSpan, "set_attributes", broken)  # every run's end-time attributes
    try:
        with caplog.at_level(logging.ERROR):
            out = react_graph(react_model()).invoke({"messages": [("user", "What is 1 + 2?")]})
    finally:
        stop()

    assert out["messages"][-1].content == "The sum is 3."
    # Every step still ended, in its place, with the identity it started with; what is missing is
    # OpenInference's end-time content (input.value etc.), and each miss was logged, as OpenInference does.
    assert traced.render() == REACT_TREE
    assert all(s.end_time is not None and "input.value" not in s.attributes for s in traced.spans)
    assert [r.getMessage() for r in caplog.records] == ["Failed to update span with run data."] * len(traced.spans)
