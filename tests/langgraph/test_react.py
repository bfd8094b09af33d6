"""The ReAct loop: run, node, model and tool steps with their identity at start and their events live."""

from __future__ import annotations

import time

import pytest
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from lg_graphs import REACT_NAMES, REACT_TREE, add, react_graph, react_model
from lg_tracing import NEEDS_PY311_ASYNC_CONTEXT, Traced
from opentelemetry.trace import StatusCode

from massgen_tracing._internal import convention as c
from massgen_tracing._internal.processor import LiveStepProcessor
from massgen_tracing._internal.records import StepRecord
from massgen_tracing.testing.langchain_models import ScriptedChatModel, tool_call
from massgen_tracing.testing.openai_server import ScriptedOpenAIServer, Text, ToolCall, ToolCalls

QUESTION = {"messages": [("user", "What is 1 + 2?")]}


def test_react_loop_is_one_trace_of_run_node_llm_and_tool_steps(traced: Traced) -> None:
    out = react_graph(react_model()).invoke(QUESTION)

    assert out["messages"][-1].content == "The sum is 3."
    assert traced.render() == REACT_TREE
    assert traced.render(names=True) == REACT_NAMES
    traced.assert_one_trace()
    # Node, model and tool spans are children of the right steps, not just somewhere in the trace.
    run = traced.one("run")
    assert all(traced.parent_of(n) == run for n in traced.steps("node"))
    assert traced.parent_of(traced.one("tool")) == traced.steps("node", "tools")[0]


def test_every_step_carries_its_identity_when_it_starts(traced: Traced) -> None:
    react_graph(react_model()).invoke(QUESTION, {"recursion_limit": 25, "configurable": {"thread_id": "t-7"}})

    assert traced.start(traced.one("run")) == {
        c.FRAMEWORK: "langgraph",
        c.STEP_KIND: "run",
        c.STEP_NAME: "react",
        c.OPENINFERENCE_SPAN_KIND: "AGENT",
        c.GEN_AI_OPERATION: "invoke_workflow",
        c.GEN_AI_AGENT_NAME: "react",
        c.STEP_MAX: 25,
        c.RUN_INPUT: "What is 1 + 2?",
        c.SESSION_ID: "t-7",
    }
    first_agent, tools, second_agent = traced.steps("node")
    assert traced.start(first_agent) == {
        c.FRAMEWORK: "langgraph",
        c.STEP_KIND: "node",
        c.STEP_NAME: "agent",
        c.OPENINFERENCE_SPAN_KIND: "CHAIN",
        c.STEP_INDEX: 1,
        c.NODE_TRIGGERS: ("branch:to:agent",),
        c.NODE_PATH: "('__pregel_pull', 'agent')",
        c.ATTEMPT: 1,
        c.SESSION_ID: "t-7",
    }
    assert [traced.start(n)[c.STEP_INDEX] for n in (first_agent, tools, second_agent)] == [1, 2, 3]
    assert traced.start(tools)[c.NODE_TRIGGERS] == ("branch:to:tools",)

    second_llm = traced.steps("llm")[1]
    assert traced.start(second_llm) == {
        c.FRAMEWORK: "langgraph",
        c.STEP_KIND: "llm",
        c.STEP_NAME: "scripted-model",
        c.OPENINFERENCE_SPAN_KIND: "LLM",
        c.GEN_AI_OPERATION: "chat",
        c.GEN_AI_REQUEST_MODEL: "scripted-model",
        c.GEN_AI_PROVIDER: "scripted",
        c.SESSION_ID: "t-7",
        "llm.model_name": "scripted-model",
        "llm.provider": "scripted",
    }
    # The prompt (all three messages of the second turn) and the bound tools follow at the end.
    llm = second_llm.attributes
    assert llm["llm.input_messages.0.message.content"] == "What is 1 + 2?"
    assert llm["llm.input_messages.1.message.tool_calls.0.tool_call.function.name"] == "add"
    assert llm["llm.input_messages.2.message.content"] == "3"
    assert '"name": "add"' in llm["llm.invocation_parameters"]

    assert traced.start(traced.one("tool")) == {
        c.FRAMEWORK: "langgraph",
        c.STEP_KIND: "tool",
        c.STEP_NAME: "add",
        c.OPENINFERENCE_SPAN_KIND: "TOOL",
        c.GEN_AI_OPERATION: "execute_tool",
        c.GEN_AI_TOOL_NAME: "add",
        c.TOOL_ARGUMENTS: '{"a": 1, "b": 2}',
        c.SESSION_ID: "t-7",
        "tool.name": "add",
    }
    # session.id is on every span of the run, steps or not.
    assert {s.attributes.get(c.SESSION_ID) for s in traced.spans} == {"t-7"}


def test_steps_are_named_by_the_convention_and_other_runnables_keep_their_run_names(traced: Traced) -> None:
    chain = ChatPromptTemplate.from_messages([("user", "{q}")]) | ScriptedChatModel(replies=["hi"], model_name="m")
    builder = StateGraph(MessagesState)
    builder.add_node("agent", lambda s: {"messages": [chain.invoke({"q": s["messages"][-1].content})]})
    builder.add_edge(START, "agent")
    builder.compile(name="chained").invoke(QUESTION)

    assert traced.render() == "run chained\n  node agent\n    · RunnableSequence\n      · ChatPromptTemplate\n" \
                              "      llm m"
    assert traced.render(names=True) == "invoke_workflow chained\n  agent\n    RunnableSequence\n" \
                                        "      ChatPromptTemplate\n      chat m"
    # Each step's name is the rule applied to what it carried at start.
    for span in traced.spans:
        if c.STEP_KIND in traced.start(span):
            assert span.name == c.span_name(traced.start(span))


def test_model_calls_report_token_usage_in_genai_and_openinference_names(traced: Traced) -> None:
    react_graph(react_model()).invoke(QUESTION)

    usage = [(s.attributes[c.GEN_AI_INPUT_TOKENS], s.attributes[c.GEN_AI_OUTPUT_TOKENS],
              s.attributes[c.LLM_TOKEN_PROMPT], s.attributes[c.LLM_TOKEN_COMPLETION],
              s.attributes[c.LLM_TOKEN_TOTAL]) for s in traced.steps("llm")]
    # Prompt = words in the request ("What is 1 + 2?" = 5, then + tool result "3" = 6);
    # completion = 1 per tool call, then the 4 words of the answer.
    assert usage == [(5, 1, 5, 1, 6), (6, 4, 6, 4, 10)]
    run = traced.one("run").attributes
    assert (run[c.GEN_AI_INPUT_TOKENS], run[c.GEN_AI_OUTPUT_TOKENS]) == (11, 5)


def test_tool_decisions_and_routes_are_events_on_the_deciding_spans(traced: Traced) -> None:
    react_graph(react_model()).invoke(QUESTION)

    first_llm, second_llm = traced.steps("llm")
    assert [(e.name, e.attributes, e.span_open) for e in traced.events(first_llm)] == [
        (c.EVENT_TOOL_DECISION, {c.TOOL_CALL_NAME: "add", c.TOOL_CALL_ARGUMENTS: '{"a": 1, "b": 2}'}, True),
    ]
    assert first_llm.attributes[c.TOOL_CALLS] == ("add",)
    assert traced.events(second_llm) == []
    assert c.TOOL_CALLS not in second_llm.attributes

    first_agent, tools, second_agent = traced.steps("node")
    assert [(e.name, e.attributes, e.span_open) for e in traced.events(first_agent)] == [
        (c.EVENT_ROUTE, {c.ROUTE_TARGETS: ("tools",)}, True),
    ]
    assert first_agent.attributes[c.ROUTE] == ("tools",)
    assert second_agent.attributes[c.ROUTE] == ("__end__",)
    assert c.ROUTE not in tools.attributes  # a plain edge is not a decision


def test_tool_span_has_result_at_end_and_error_status_when_the_tool_fails(traced: Traced) -> None:
    @tool
    def divide(a: int, b: int) -> float:
        """Divide a by b."""
        return a / b

    model = ScriptedChatModel(replies=[[tool_call("divide", {"a": 1, "b": 0}, id="c1")],
                                       [tool_call("add", {"a": 2, "b": 2}, id="c2")], "Four."])
    bound = model.bind_tools([add, divide])
    builder = StateGraph(MessagesState)
    builder.add_node("agent", lambda s: {"messages": [bound.invoke(s["messages"])]})
    builder.add_node("tools", ToolNode([add, divide], handle_tool_errors=True))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    out = builder.compile(name="calc").invoke(QUESTION)

    assert out["messages"][-1].content == "Four."
    failed, ok = traced.steps("tool")
    assert (failed.name, failed.status.status_code) == ("execute_tool divide", StatusCode.ERROR)
    assert [e.attributes["exception.type"] for e in traced.events(failed, "exception")] == ["ZeroDivisionError"]
    assert (ok.name, ok.status.status_code, ok.attributes[c.TOOL_RESULT]) == ("execute_tool add", StatusCode.OK, "4")
    # ToolNode turned the failure into a message for the model: the node itself did not fail.
    assert {n.status.status_code for n in traced.steps("node")} == {StatusCode.OK}


def test_streamed_tokens_are_delta_events_while_the_model_streams(traced: Traced) -> None:
    model = ScriptedChatModel(replies=["Three is the sum."], streaming=True)
    react_graph(model).invoke(QUESTION)

    llm = traced.one("llm")
    deltas = traced.events(llm, c.EVENT_DELTA)
    assert [e.attributes for e in deltas] == [
        {c.DELTA_TEXT: t, c.DELTA_COUNT: 1} for t in ("Three", " is", " the", " sum.")
    ]
    assert all(e.span_open for e in deltas)
    assert (llm.attributes[c.GEN_AI_INPUT_TOKENS], llm.attributes[c.GEN_AI_OUTPUT_TOKENS]) == (5, 4)


def test_stream_mode_messages_makes_a_plain_model_stream_and_record_deltas(traced: Traced) -> None:
    chunks = [chunk.content for chunk, _ in react_graph(react_model()).stream(QUESTION, stream_mode="messages")
              if chunk.content and chunk.type == "AIMessageChunk"]

    assert chunks == ["The", " sum", " is", " 3."]
    first_llm, second_llm = traced.steps("llm")
    assert traced.events(first_llm, c.EVENT_DELTA) == []  # tool calls only: no text
    assert "".join(e.attributes[c.DELTA_TEXT] for e in traced.events(second_llm, c.EVENT_DELTA)) == "The sum is 3."


def test_live_step_processor_receives_each_step_with_its_kind_at_start(traced: Traced) -> None:
    records: list[StepRecord] = []

    class ListSink:
        def handle(self, record: StepRecord) -> None:
            records.append(record)

        def close(self) -> None:
            pass

    live = LiveStepProcessor([ListSink()])
    traced.provider.add_span_processor(live)
    react_graph(react_model(streaming=True)).invoke(QUESTION)
    live.force_flush()

    starts = [(r.kind, r.step_name, r.index) for r in records if r.type == "start"]
    assert starts == [("run", "react", None), ("node", "agent", 1), ("llm", "scripted-model", None),
                      ("node", "tools", 2), ("tool", "add", None), ("node", "agent", 3),
                      ("llm", "scripted-model", None)]
    deltas = [r for r in records if r.event == c.EVENT_DELTA]
    assert "".join(r.attributes[c.DELTA_TEXT] for r in deltas) == "The sum is 3."
    live.shutdown()


def test_react_loop_with_chat_openai_against_the_loopback_server(traced: Traced) -> None:
    from langchain_openai import ChatOpenAI

    script = [ToolCalls([ToolCall("add", {"a": 1, "b": 2})]), Text("The sum is 3.")]
    with ScriptedOpenAIServer(script) as server:
        model = ChatOpenAI(base_url=server.base_url, api_key="test", model="scripted", max_retries=0,
                           streaming=True, stream_usage=True)
        started = time.monotonic()
        out = react_graph(model).invoke(QUESTION)
        assert time.monotonic() - started < 10

    assert out["messages"][-1].content == "The sum is 3."
    assert traced.render() == REACT_TREE.replace("scripted-model", "scripted")
    traced.assert_one_trace()
    first_llm, second_llm = traced.steps("llm")
    start = traced.start(first_llm)
    assert (start[c.GEN_AI_REQUEST_MODEL], start[c.GEN_AI_PROVIDER], start["llm.provider"]) == (
        "scripted", "openai", "openai")
    assert [e.attributes[c.TOOL_CALL_NAME] for e in traced.events(first_llm, c.EVENT_TOOL_DECISION)] == ["add"]
    assert "".join(e.attributes[c.DELTA_TEXT] for e in traced.events(second_llm, c.EVENT_DELTA)) == "The sum is 3."
    # The server counts words: 5 in the question; +1 for the tool result "3".
    assert [(s.attributes[c.GEN_AI_INPUT_TOKENS], s.attributes[c.LLM_TOKEN_PROMPT])
            for s in (first_llm, second_llm)] == [(5, 5), (6, 6)]


@pytest.mark.parametrize("mode", ["invoke", "stream", pytest.param("astream_events", marks=NEEDS_PY311_ASYNC_CONTEXT)])
def test_each_top_level_call_is_exactly_one_run(traced: Traced, mode: str) -> None:
    import asyncio

    graph = react_graph(react_model())
    if mode == "invoke":
        graph.invoke(QUESTION)
    elif mode == "stream":
        list(graph.stream(QUESTION, stream_mode="updates"))
    else:
        async def consume() -> None:
            async for _ in graph.astream_events(QUESTION, version="v2"):
                pass

        asyncio.run(consume())
    assert traced.render() == REACT_TREE
    assert traced.render(names=True) == REACT_NAMES
    traced.assert_one_trace()


def test_batch_is_one_run_per_input_each_its_own_trace(traced: Traced) -> None:
    model = ScriptedChatModel(responder=lambda messages: f"echo {messages[-1].content}")
    outs = react_graph(model).batch([{"messages": [("user", "a")]}, {"messages": [("user", "b")]}])

    assert sorted(o["messages"][-1].content for o in outs) == ["echo a", "echo b"]
    runs = traced.steps("run")
    assert sorted(traced.start(r)[c.RUN_INPUT] for r in runs) == ["a", "b"]
    assert all(r.parent is None for r in runs)
    assert len({s.context.trace_id for s in traced.spans}) == 2


def test_the_terminal_view_nests_a_model_call_made_inside_a_chain_under_its_node() -> None:
    """A node that calls its model through a runnable chain (as `create_react_agent` does): the spans
    between node and model are not steps, and the live view still shows the model inside the node."""
    import io

    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import RunnableLambda
    from opentelemetry.sdk.trace import TracerProvider

    from massgen_tracing._internal.console import PlainConsoleSink
    from massgen_tracing._internal.processor import LiveStepProcessor
    from massgen_tracing.langgraph import LangGraphInstrumentor
    from massgen_tracing.testing.langchain_models import ScriptedChatModel

    chain = ChatPromptTemplate.from_messages([("user", "{q}")]) | ScriptedChatModel(replies=["fine"])
    builder = StateGraph(MessagesState)
    builder.add_node("agent", RunnableLambda(lambda s: {"messages": [chain.invoke({"q": "how?"})]},
                                             name="call_model"))
    builder.add_edge(START, "agent")
    graph = builder.compile(name="nested")

    out = io.StringIO()
    provider = TracerProvider(shutdown_on_exit=False)
    processor = LiveStepProcessor([PlainConsoleSink(out, show_time=False)])
    provider.add_span_processor(processor)
    instrumentor = LangGraphInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        graph.invoke({"messages": [("user", "hi")]})
    finally:
        instrumentor.uninstrument()
        processor.shutdown()
    import re

    text = re.sub(r" \d+(\.\d+)?(ms|s)\b", " <t>", out.getvalue())  # durations vary
    assert text == """\
▶ langgraph run nested "hi"
  ▶ node agent #1
    ▶ llm scripted-model
    ✓ llm scripted-model <t> in=1 out=1
  ✓ node agent #1 <t> in=1 out=1
✓ langgraph run nested <t> 2 steps in=1 out=1
"""
