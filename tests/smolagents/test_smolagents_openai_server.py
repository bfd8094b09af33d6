"""A real `OpenAIServerModel` over HTTP against the loopback scripted server: the same step tree, with
the provider and the server's token usage on the model-call spans."""

from __future__ import annotations

import pytest
from sa_helpers import SLOW_TOOL_SECONDS, Traced, slow_add

from massgen_tracing._internal import convention as c
from massgen_tracing.testing.openai_server import ScriptedOpenAIServer, Text, ToolCall, ToolCalls
from smolagents import OpenAIServerModel, ToolCallingAgent


@pytest.mark.parametrize("stream_outputs", [False, True], ids=["generate", "generate_stream"])
def test_openai_server_model_run_has_the_same_tree_with_provider_and_server_usage(
        traced: Traced, stream_outputs: bool) -> None:
    script = [
        ToolCalls([ToolCall("slow_add", {"a": 2, "b": 3})], prompt_tokens=120, completion_tokens=9),
        ToolCalls([ToolCall("final_answer", {"answer": "5"})], prompt_tokens=150, completion_tokens=7),
    ]
    with ScriptedOpenAIServer(script) as server:
        model = OpenAIServerModel(model_id="scripted", api_base=server.base_url, api_key="not-needed")
        agent = ToolCallingAgent(tools=[slow_add], model=model, name="calc", max_steps=4,
                                 stream_outputs=stream_outputs, verbosity_level=-1)
        assert agent.run("What is 2+3?") == "5"
        assert server.errors == []

    assert traced.tree() == "\n".join([
        "invoke_agent calc [run] OK",
        "  Step 1 [action] OK",
        "    chat scripted [llm] OK",
        "    execute_tool slow_add [tool] OK",
        "  Step 2 [action] OK",
        "    chat scripted [llm] OK",
        "    final_answer [final_answer] OK",
    ])
    first = next(s for s in traced.spans() if s.name == "chat scripted")
    assert traced.start_attributes(first)[c.GEN_AI_PROVIDER] == "openai"
    assert {k: first.attributes[k] for k in (c.GEN_AI_INPUT_TOKENS, c.GEN_AI_OUTPUT_TOKENS, c.LLM_TOKEN_TOTAL,
                                             c.TOOL_CALLS)} == {
        c.GEN_AI_INPUT_TOKENS: 120, c.GEN_AI_OUTPUT_TOKENS: 9, c.LLM_TOKEN_TOTAL: 129, c.TOOL_CALLS: ("slow_add",)}
    run = traced.span("invoke_agent calc")
    assert (run.attributes[c.GEN_AI_INPUT_TOKENS], run.attributes[c.GEN_AI_OUTPUT_TOKENS]) == (270, 16)
    tool = traced.span("execute_tool slow_add")
    assert (tool.end_time - tool.start_time) / 1e9 >= SLOW_TOOL_SECONDS
    assert tool.attributes[c.TOOL_RESULT] == "5"
    if stream_outputs:
        # Tool-call chunks carry no text: the text deltas are the events (none here).
        assert [name for name, _ in traced.events(first)] == []


def test_streamed_text_from_the_server_arrives_as_delta_events(traced: Traced) -> None:
    from smolagents import CodeAgent

    reply = Text("Thought: easy.\n<code>\nfinal_answer(5)\n</code>", prompt_tokens=50, completion_tokens=6)
    with ScriptedOpenAIServer([reply]) as server:
        model = OpenAIServerModel(model_id="scripted", api_base=server.base_url, api_key="not-needed")
        agent = CodeAgent(tools=[], model=model, name="coder", stream_outputs=True, verbosity_level=-1)
        assert agent.run("2+3?") == 5

    llm = traced.span("chat scripted")
    texts = [attrs[c.DELTA_TEXT] for name, attrs in traced.events(llm) if name == c.EVENT_DELTA]
    assert "".join(texts) == "Thought: easy.\n<code>\nfinal_answer(5)\n</code>"
    assert len(texts) > 1
    assert (llm.attributes[c.GEN_AI_INPUT_TOKENS], llm.attributes[c.GEN_AI_OUTPUT_TOKENS]) == (50, 6)
