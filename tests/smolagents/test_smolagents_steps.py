"""Every smolagents step becomes a span of the convention: whole trees, start attributes, events."""

from __future__ import annotations

import sys

import pytest
from opentelemetry.sdk.trace import TracerProvider
from sa_helpers import SLOW_TOOL_SECONDS, Traced, divide, lookup, slow_add
from smolagents.models import ChatMessage, MessageRole, Model
from smolagents.monitoring import TokenUsage
from smolagents.utils import AgentGenerationError

from massgen_tracing._internal import convention as c
from massgen_tracing.testing.smolagents_models import (
    Error,
    ScriptedModel,
    Text,
    ToolCall,
    ToolCalls,
    code,
    final_answer,
    tool_call,
)
from smolagents import CodeAgent, ToolCallingAgent, tool

OK = "OK"


def identity(attrs: dict[str, object]) -> dict[str, object]:
    """The convention's start-time keys of a span (what a live view shows before the step ends)."""
    keys = (c.FRAMEWORK, c.STEP_KIND, c.STEP_NAME, c.STEP_INDEX, c.STEP_MAX, c.OPENINFERENCE_SPAN_KIND,
            c.GEN_AI_OPERATION, c.GEN_AI_AGENT_NAME, c.GEN_AI_TOOL_NAME, c.GEN_AI_REQUEST_MODEL,
            c.RUN_INPUT, c.TOOL_ARGUMENTS)
    return {k: attrs[k] for k in keys if k in attrs}


def test_tool_calling_run_is_one_trace_with_every_step_identified_at_start(traced: Traced) -> None:
    model = ScriptedModel([tool_call("slow_add", a=2, b=3), final_answer("5")])
    agent = ToolCallingAgent(tools=[slow_add], model=model, name="calc", max_steps=4, verbosity_level=-1)

    assert agent.run("What is 2+3?") == "5"

    assert traced.tree() == "\n".join([
        "invoke_agent calc [run] OK",
        "  Step 1 [action] OK",
        "    chat scripted [llm] OK",
        "    execute_tool slow_add [tool] OK",
        "  Step 2 [action] OK",
        "    chat scripted [llm] OK",
        "    final_answer [final_answer] OK",
    ])
    assert len(traced.trace_ids()) == 1
    run = traced.span("invoke_agent calc")
    step1 = traced.span("Step 1")
    tool = traced.span("execute_tool slow_add")
    llm1 = next(s for s in traced.spans() if s.name == "chat scripted")
    answer = traced.span("final_answer")

    assert identity(traced.start_attributes(run)) == {
        c.FRAMEWORK: "smolagents", c.STEP_KIND: "run", c.STEP_NAME: "calc", c.STEP_MAX: 4,
        c.OPENINFERENCE_SPAN_KIND: "AGENT", c.GEN_AI_OPERATION: "invoke_agent", c.GEN_AI_AGENT_NAME: "calc",
        c.RUN_INPUT: "What is 2+3?",
    }
    assert identity(traced.start_attributes(step1)) == {
        c.FRAMEWORK: "smolagents", c.STEP_KIND: "action", c.STEP_NAME: "calc", c.STEP_INDEX: 1, c.STEP_MAX: 4,
        c.OPENINFERENCE_SPAN_KIND: "CHAIN", c.GEN_AI_AGENT_NAME: "calc",
    }
    assert identity(traced.start_attributes(llm1)) == {
        c.FRAMEWORK: "smolagents", c.STEP_KIND: "llm", c.STEP_NAME: "scripted", c.OPENINFERENCE_SPAN_KIND: "LLM",
        c.GEN_AI_OPERATION: "chat", c.GEN_AI_REQUEST_MODEL: "scripted",
    }
    assert identity(traced.start_attributes(tool)) == {
        c.FRAMEWORK: "smolagents", c.STEP_KIND: "tool", c.STEP_NAME: "slow_add", c.OPENINFERENCE_SPAN_KIND: "TOOL",
        c.GEN_AI_OPERATION: "execute_tool", c.GEN_AI_TOOL_NAME: "slow_add",
        c.TOOL_ARGUMENTS: '{"a": 2, "b": 3}',
    }
    assert identity(traced.start_attributes(answer)) == {
        c.FRAMEWORK: "smolagents", c.STEP_KIND: "final_answer", c.STEP_NAME: "final_answer",
        c.OPENINFERENCE_SPAN_KIND: "CHAIN", c.GEN_AI_TOOL_NAME: "final_answer", c.TOOL_ARGUMENTS: '{"answer": "5"}',
    }

    # End attributes: what the step produced.
    assert tool.attributes[c.TOOL_RESULT] == "5"
    assert (tool.end_time - tool.start_time) / 1e9 >= SLOW_TOOL_SECONDS
    assert step1.attributes[c.TOOL_CALLS] == ("slow_add",)
    assert step1.attributes[c.OBSERVATIONS] == "5"
    assert llm1.attributes[c.TOOL_CALLS] == ("slow_add",)
    assert llm1.attributes[c.GEN_AI_OUTPUT_TOKENS] == llm1.attributes[c.LLM_TOKEN_COMPLETION] == 5
    assert llm1.attributes[c.GEN_AI_INPUT_TOKENS] == llm1.attributes[c.LLM_TOKEN_PROMPT] > 0
    llm_spans = [s for s in traced.spans() if s.name == "chat scripted"]
    assert run.attributes[c.GEN_AI_INPUT_TOKENS] == sum(s.attributes[c.GEN_AI_INPUT_TOKENS] for s in llm_spans)
    assert run.attributes[c.GEN_AI_OUTPUT_TOKENS] == sum(s.attributes[c.GEN_AI_OUTPUT_TOKENS] for s in llm_spans)
    assert run.attributes[c.OUTPUT_VALUE] == "5"

    # In-step happenings as events, at the moment they happen.
    assert traced.events(run) == [
        (c.EVENT_PROGRESS, {c.PROGRESS_CURRENT: 1, c.PROGRESS_TOTAL: 4}),
        (c.EVENT_PROGRESS, {c.PROGRESS_CURRENT: 2, c.PROGRESS_TOTAL: 4}),
    ]
    assert traced.events(step1) == [
        (c.EVENT_TOOL_DECISION, {c.TOOL_CALL_NAME: "slow_add", c.TOOL_CALL_ARGUMENTS: '{"a": 2, "b": 3}'}),
    ]
    # The decision is announced before the slow tool runs, not after.
    order = traced.capture.order
    assert order.index(("event", "Step 1", c.EVENT_TOOL_DECISION)) < order.index(
        ("start", "execute_tool slow_add", None))


def test_spans_keep_the_openinference_attributes_phoenix_renders(traced: Traced) -> None:
    model = ScriptedModel([tool_call("lookup", key="paris"), final_answer("sunny")])
    ToolCallingAgent(tools=[lookup], model=model, name="weather", verbosity_level=-1).run("Weather in Paris?")

    run = traced.span("invoke_agent weather")
    llm = next(s for s in traced.spans() if s.name == "chat scripted")
    tool = traced.span("execute_tool lookup")
    assert {k: run.attributes[k] for k in ("input.value", "output.value", "smolagents.tools_names",
                                           "smolagents.max_steps", "llm.token_count.total")} == {
        "input.value": "Weather in Paris?", "output.value": "sunny", "smolagents.tools_names": ("lookup",
                                                                                                 "final_answer"),
        "smolagents.max_steps": 20, "llm.token_count.total": run.attributes[c.GEN_AI_INPUT_TOKENS]
        + run.attributes[c.GEN_AI_OUTPUT_TOKENS],
    }
    assert llm.attributes["llm.model_name"] == "scripted"
    assert llm.attributes["llm.input_messages.1.message.role"] == "user"
    assert llm.attributes["llm.output_messages.0.message.tool_calls.0.tool_call.function.name"] == "lookup"
    assert llm.attributes["llm.tools.0.tool.json_schema"].startswith('{"type": "function"')
    assert {k: tool.attributes[k] for k in ("tool.name", "tool.description", "input.value", "output.value")} == {
        "tool.name": "lookup", "tool.description": "Looks a key up.", "input.value": '{"key": "paris"}',
        "output.value": "sunny",
    }


def test_a_full_result_run_records_the_answer_and_a_tool_returning_none_records_null(
        traced: Traced) -> None:
    @tool
    def remember(fact: str) -> None:
        """Stores a fact and returns nothing.

        Args:
            fact: The fact to store.
        """

    model = ScriptedModel([tool_call("remember", fact="sky is blue"), final_answer("stored")])
    agent = ToolCallingAgent(tools=[remember], model=model, name="memo", verbosity_level=-1)

    result = agent.run("Remember the sky is blue", return_full_result=True)

    assert result.output == "stored"
    assert traced.span("invoke_agent memo").attributes[c.OUTPUT_VALUE] == "stored"
    stored = traced.span("execute_tool remember")
    assert stored.status.status_code.name == "OK"
    assert (stored.attributes[c.TOOL_RESULT], stored.attributes[c.OUTPUT_VALUE]) == ("null", "null")


def test_parallel_tool_calls_each_nest_under_their_step(traced: Traced) -> None:
    model = ScriptedModel([
        ToolCalls([ToolCall("lookup", {"key": "paris"}), ToolCall("lookup", {"key": "oslo"})]),
        final_answer("sunny and snow"),
    ])
    ToolCallingAgent(tools=[lookup], model=model, name="weather", verbosity_level=-1).run("Paris and Oslo?")

    assert traced.tree() == "\n".join([
        "invoke_agent weather [run] OK",
        "  Step 1 [action] OK",
        "    chat scripted [llm] OK",
        "    execute_tool lookup [tool] OK",
        "    execute_tool lookup [tool] OK",
        "  Step 2 [action] OK",
        "    chat scripted [llm] OK",
        "    final_answer [final_answer] OK",
    ])
    step1 = traced.span("Step 1")
    assert [e for e, _ in traced.events(step1)] == [c.EVENT_TOOL_DECISION, c.EVENT_TOOL_DECISION]
    assert step1.attributes[c.TOOL_CALLS] == ("lookup", "lookup")


def test_failed_tool_call_is_an_error_step_and_the_next_step_recovers(traced: Traced) -> None:
    model = ScriptedModel([tool_call("divide", a=1, b=0), tool_call("divide", a=1, b=4), final_answer("0.25")])
    agent = ToolCallingAgent(tools=[divide], model=model, name="calc", verbosity_level=-1)

    assert agent.run("1/0, or else 1/4") == "0.25"

    assert traced.tree() == "\n".join([
        "invoke_agent calc [run] OK",
        "  Step 1 [action] ERROR",
        "    chat scripted [llm] OK",
        "    execute_tool divide [tool] ERROR",
        "  Step 2 [action] OK",
        "    chat scripted [llm] OK",
        "    execute_tool divide [tool] OK",
        "  Step 3 [action] OK",
        "    chat scripted [llm] OK",
        "    final_answer [final_answer] OK",
    ])
    failed_tool = next(s for s in traced.spans() if s.name == "execute_tool divide")
    assert failed_tool.status.description == "ZeroDivisionError: division by zero"
    step1 = traced.span("Step 1")
    assert step1.status.description.startswith("AgentToolExecutionError: Error executing tool 'divide'")
    assert [e for e, _ in traced.events(step1)] == [c.EVENT_TOOL_DECISION, "exception"]


@pytest.mark.parametrize("stream", [False, True])
def test_a_final_answer_rejected_by_a_check_is_a_failed_step_not_an_abandoned_one(traced: Traced,
                                                                               stream: bool) -> None:
    seen: list[str] = []

    def second_try_only(answer: str, memory: object, agent: object = None) -> bool:
        seen.append(answer)
        return len(seen) > 1

    model = ScriptedModel([final_answer("first try"), final_answer("second try")])
    agent = ToolCallingAgent(tools=[], model=model, name="checked", verbosity_level=-1,
                             final_answer_checks=[second_try_only])
    if stream:
        *_, last = agent.run("x", stream=True)
        assert last.output == "second try"
    else:
        assert agent.run("x") == "second try"

    assert traced.tree() == "\n".join([
        "invoke_agent checked [run] OK",
        "  Step 1 [action] ERROR",
        "    chat scripted [llm] OK",
        "    final_answer [final_answer] OK",
        "  Step 2 [action] OK",
        "    chat scripted [llm] OK",
        "    final_answer [final_answer] OK",
    ])
    step = traced.span("Step 1")
    assert c.ABANDONED not in step.attributes
    error = "Check second_try_only failed with error: "  # smolagents' AgentError, the AssertionError's text: ""
    assert step.status.description == f"AgentError: {error}"
    assert [(e.attributes["exception.type"], e.attributes["exception.message"])
            for e in step.events if e.name == "exception"] == [("smolagents.utils.AgentError", error)]


def test_code_agent_managing_a_tool_agent_shows_the_failed_code_step_and_the_nested_run(traced: Traced) -> None:
    helper = ToolCallingAgent(
        tools=[lookup], name="weather_agent", description="Knows the weather.", verbosity_level=-1,
        model=ScriptedModel([tool_call("lookup", key="oslo"), final_answer("snow")], model_id="helper-model"),
    )
    manager = CodeAgent(
        tools=[], managed_agents=[helper], name="manager", max_steps=5, verbosity_level=-1,
        model=ScriptedModel([
            code('print("checking")\nratio = 1 / 0'),
            code('report = weather_agent(task="Weather in Oslo?")\nprint(report)\nfinal_answer("snow")'),
        ], model_id="manager-model"),
    )

    assert manager.run("What is the weather in Oslo?") == "snow"

    assert traced.tree() == "\n".join([
        "invoke_agent manager [run] OK",
        "  Step 1 [action] ERROR",
        "    chat manager-model [llm] OK",
        "  Step 2 [action] OK",
        "    chat manager-model [llm] OK",
        "    execute_tool weather_agent [tool] OK",
        "      invoke_agent weather_agent [run] OK",
        "        Step 1 [action] OK",
        "          chat helper-model [llm] OK",
        "          execute_tool lookup [tool] OK",
        "        Step 2 [action] OK",
        "          chat helper-model [llm] OK",
        "          final_answer [final_answer] OK",
        "    final_answer [final_answer] OK",
    ])
    failed = next(s for s in traced.spans() if s.name == "Step 1" and s.attributes[c.STEP_NAME] == "manager")
    assert failed.attributes[c.CODE] == 'print("checking")\nratio = 1 / 0'
    assert failed.attributes[c.CODE_ERROR_LINE] == "ratio = 1 / 0"
    assert failed.status.description.startswith("AgentExecutionError: Code execution failed at line 'ratio = 1 / 0'")
    assert traced.events(failed)[0] == (c.EVENT_TOOL_DECISION, {
        c.TOOL_CALL_NAME: "python_interpreter", c.TOOL_CALL_ARGUMENTS: 'print("checking")\nratio = 1 / 0'})
    assert traced.events(failed)[1] == (c.EVENT_LOG, {c.LOG_TEXT: "checking"})
    assert traced.events(failed)[2][0] == "exception"

    managed_call = traced.span("execute_tool weather_agent")
    assert traced.start_attributes(managed_call)[c.TOOL_ARGUMENTS] == '{"task": "Weather in Oslo?"}'
    assert managed_call.attributes[c.TOOL_RESULT].startswith("Here is the final answer from your managed agent")
    step2 = next(s for s in traced.spans() if s.name == "Step 2" and s.attributes[c.STEP_NAME] == "manager")
    assert [e for e, _ in traced.events(step2)] == [c.EVENT_TOOL_DECISION, c.EVENT_LOG]
    # The run's task is what the manager asked; smolagents' managed-agent prompt around it is its input.
    managed_run = traced.span("invoke_agent weather_agent")
    assert managed_run.attributes[c.RUN_INPUT] == "Weather in Oslo?"
    assert traced.start_attributes(managed_run)[c.RUN_INPUT] == "Weather in Oslo?"
    assert managed_run.attributes[c.INPUT_VALUE].startswith("You're a helpful agent named 'weather_agent'")
    assert "Weather in Oslo?" in managed_run.attributes[c.INPUT_VALUE]


def test_planning_agent_has_a_planning_step_at_each_interval(traced: Traced) -> None:
    model = ScriptedModel([
        Text("1. look up paris\n2. answer"),
        tool_call("lookup", key="paris"),
        tool_call("lookup", key="oslo"),
        Text("1. answer now"),
        final_answer("sunny"),
    ])
    agent = ToolCallingAgent(tools=[lookup], model=model, name="planner", planning_interval=2, max_steps=6,
                             verbosity_level=-1)

    assert agent.run("Weather in Paris?") == "sunny"

    assert traced.tree() == "\n".join([
        "invoke_agent planner [run] OK",
        "  plan planner [planning] OK",
        "    chat scripted [llm] OK",
        "  Step 1 [action] OK",
        "    chat scripted [llm] OK",
        "    execute_tool lookup [tool] OK",
        "  Step 2 [action] OK",
        "    chat scripted [llm] OK",
        "    execute_tool lookup [tool] OK",
        "  plan planner [planning] OK",
        "    chat scripted [llm] OK",
        "  Step 3 [action] OK",
        "    chat scripted [llm] OK",
        "    final_answer [final_answer] OK",
    ])
    first, update = (s for s in traced.spans() if s.name == "plan planner")
    assert identity(traced.start_attributes(first)) == {
        c.FRAMEWORK: "smolagents", c.STEP_KIND: "planning", c.STEP_NAME: "planner", c.STEP_INDEX: 1,
        c.STEP_MAX: 6, c.OPENINFERENCE_SPAN_KIND: "CHAIN", c.GEN_AI_OPERATION: "plan", c.GEN_AI_AGENT_NAME: "planner",
    }
    assert traced.start_attributes(update)[c.STEP_INDEX] == 3
    assert first.attributes[c.MODEL_OUTPUT] == "1. look up paris\n2. answer"
    assert "1. look up paris\n2. answer" in first.attributes[c.PLAN]
    assert "1. answer now" in update.attributes[c.PLAN]


def test_a_model_class_defined_after_instrument_gets_model_call_spans(traced: Traced) -> None:
    class EchoModel(Model):
        """A user's own model, defined after instrument(): OpenInference alone would not trace it."""

        def generate(self, messages, stop_sequences=None, response_format=None, tools_to_call_from=None,
                     **kwargs):  # type: ignore[no-untyped-def]
            answer = "Thought: done.\n<code>\nfinal_answer('echo')\n</code>"
            return ChatMessage(role=MessageRole.ASSISTANT, content=answer,
                               token_usage=TokenUsage(input_tokens=7, output_tokens=3))

    class LoudEchoModel(EchoModel):
        """A subclass calling super().generate: still one model call."""

        def generate(self, messages, **kwargs):  # type: ignore[no-untyped-def,override]
            return super().generate(messages, **kwargs)

    agent = CodeAgent(tools=[], model=LoudEchoModel(model_id="echo-1"), name="echoer", verbosity_level=-1)

    assert agent.run("Say echo") == "echo"

    assert traced.tree() == "\n".join([
        "invoke_agent echoer [run] OK",
        "  Step 1 [action] OK",
        "    chat echo-1 [llm] OK",
        "    final_answer [final_answer] OK",
    ])
    llm = traced.span("chat echo-1")
    assert {k: llm.attributes[k] for k in (c.GEN_AI_INPUT_TOKENS, c.GEN_AI_OUTPUT_TOKENS, c.LLM_TOKEN_PROMPT,
                                           c.LLM_TOKEN_COMPLETION, c.LLM_TOKEN_TOTAL)} == {
        c.GEN_AI_INPUT_TOKENS: 7, c.GEN_AI_OUTPUT_TOKENS: 3, c.LLM_TOKEN_PROMPT: 7, c.LLM_TOKEN_COMPLETION: 3,
        c.LLM_TOKEN_TOTAL: 10,
    }


def test_a_reply_without_token_usage_keeps_its_output_and_reports_no_usage(traced: Traced) -> None:
    class NoUsageModel(Model):
        """A user's own model whose replies carry no token_usage (OpenInference then asked the model for
        `last_input_token_count`, which smolagents models no longer have: an internal error)."""

        def generate(self, messages, stop_sequences=None, response_format=None, tools_to_call_from=None,
                     **kwargs):  # type: ignore[no-untyped-def]
            return ChatMessage(role=MessageRole.ASSISTANT,
                               content="Thought: done.\n<code>\nfinal_answer('ok')\n</code>")

    agent = CodeAgent(tools=[], model=NoUsageModel(model_id="plain-1"), name="plain", verbosity_level=-1)

    assert agent.run("Say ok") == "ok"

    assert traced.tree() == "\n".join([
        "invoke_agent plain [run] OK",
        "  Step 1 [action] OK",
        "    chat plain-1 [llm] OK",
        "    final_answer [final_answer] OK",
    ])
    llm = traced.span("chat plain-1")
    assert llm.attributes["llm.output_messages.0.message.contents.0.message_content.text"] == (
        "Thought: done.\n<code>\nfinal_answer('ok')\n</code>")
    assert '"token_usage": null' in llm.attributes["output.value"]
    assert llm.attributes["llm.model_name"] == "plain-1"
    assert not [k for k in llm.attributes if "token" in k]  # unknown, not 0


def test_streamed_model_output_is_one_delta_event_per_chunk_with_usage_at_end(traced: Traced) -> None:
    model = ScriptedModel([code("final_answer(42)", thought="The answer is known.")])
    agent = CodeAgent(tools=[], model=model, name="streamer", stream_outputs=True, verbosity_level=-1)

    assert agent.run("The answer?") == 42

    assert traced.tree() == "\n".join([
        "invoke_agent streamer [run] OK",
        "  Step 1 [action] OK",
        "    chat scripted [llm] OK",
        "    final_answer [final_answer] OK",
    ])
    llm = traced.span("chat scripted")
    deltas = traced.events(llm)
    assert all(name == c.EVENT_DELTA and attrs[c.DELTA_COUNT] == 1 for name, attrs in deltas)
    assert [attrs[c.DELTA_TEXT] for _, attrs in deltas] == [
        "Thought:", " The", " answer", " is", " known.", "\n<code>", "\nfinal_answer(42)", "\n</code>"]
    assert llm.attributes[c.GEN_AI_OUTPUT_TOKENS] == 8
    assert llm.attributes[c.GEN_AI_INPUT_TOKENS] > 0
    # Deltas are events of the model call, not of the enclosing step or run.
    assert traced.events(traced.span("Step 1")) == [
        (c.EVENT_TOOL_DECISION, {c.TOOL_CALL_NAME: "python_interpreter", c.TOOL_CALL_ARGUMENTS: "final_answer(42)"})]


def test_streamed_tool_calls_of_a_tool_calling_agent_are_decided_and_run(traced: Traced) -> None:
    model = ScriptedModel([tool_call("lookup", key="oslo"), final_answer("snow")])
    agent = ToolCallingAgent(tools=[lookup], model=model, name="w", stream_outputs=True, verbosity_level=-1)

    assert agent.run("Oslo?") == "snow"

    assert traced.tree() == "\n".join([
        "invoke_agent w [run] OK",
        "  Step 1 [action] OK",
        "    chat scripted [llm] OK",
        "    execute_tool lookup [tool] OK",
        "  Step 2 [action] OK",
        "    chat scripted [llm] OK",
        "    final_answer [final_answer] OK",
    ])
    llm1 = next(s for s in traced.spans() if s.name == "chat scripted")
    assert llm1.attributes[c.TOOL_CALLS] == ("lookup",)
    assert llm1.attributes[c.GEN_AI_OUTPUT_TOKENS] == 3


def test_exhausting_max_steps_forces_a_final_answer_and_marks_the_run_as_failed(traced: Traced) -> None:
    model = ScriptedModel([tool_call("lookup", key="paris"), tool_call("lookup", key="oslo"),
                           Text("Probably sunny.")])
    agent = ToolCallingAgent(tools=[lookup], model=model, name="slowpoke", max_steps=2, verbosity_level=-1)

    assert agent.run("Weather?") == "Probably sunny."

    assert traced.tree() == "\n".join([
        "invoke_agent slowpoke [run] ERROR",
        "  Step 1 [action] OK",
        "    chat scripted [llm] OK",
        "    execute_tool lookup [tool] OK",
        "  Step 2 [action] OK",
        "    chat scripted [llm] OK",
        "    execute_tool lookup [tool] OK",
        "  final_answer [final_answer] ERROR",
        "    chat scripted [llm] OK",
    ])
    run = traced.span("invoke_agent slowpoke")
    assert run.status.description == "AgentMaxStepsError: Reached max steps."
    assert run.attributes[c.OUTPUT_VALUE] == "Probably sunny."
    forced = traced.span("final_answer")
    assert forced.attributes[c.TOOL_RESULT] == "Probably sunny."
    assert [(name, attrs["exception.type"]) for name, attrs in traced.events(forced)] == [
        ("exception", "smolagents.utils.AgentMaxStepsError")]


def test_an_exception_out_of_run_marks_the_step_and_the_run_as_errors(traced: Traced) -> None:
    model = ScriptedModel([Error(503, "model overloaded")])
    agent = ToolCallingAgent(tools=[lookup], model=model, name="fragile", verbosity_level=-1)

    with pytest.raises(AgentGenerationError, match="model overloaded"):
        agent.run("Anything?")

    assert traced.tree() == "\n".join([
        "invoke_agent fragile [run] ERROR",
        "  Step 1 [action] ERROR",
        "    chat scripted [llm] ERROR",
    ])
    assert traced.span("chat scripted").status.description == "ScriptedModelError: HTTP 503: model overloaded"
    assert traced.span("invoke_agent fragile").status.description.startswith(
        "AgentGenerationError: Error while generating output:")
    assert traced.unended() == []


def test_an_exception_without_a_message_is_described_by_its_type_alone(traced: Traced) -> None:
    @tool
    def stop(reason: str) -> str:
        """Stop here.

        Args:
            reason: why
        """
        raise KeyboardInterrupt

    model = ScriptedModel([tool_call("stop", reason="now")])
    agent = ToolCallingAgent(tools=[stop], model=model, name="stopper", verbosity_level=-1)

    with pytest.raises(KeyboardInterrupt):
        agent.run("Stop")

    assert traced.span("execute_tool stop").status.description == "KeyboardInterrupt"  # not "KeyboardInterrupt: "
    assert traced.span("invoke_agent stopper").status.description == "KeyboardInterrupt"


@pytest.mark.parametrize("code", [None, 0, 3])
def test_sys_exit_in_a_tool_fails_the_steps_only_with_a_failing_status(traced: Traced, code: int | None) -> None:
    @tool
    def leave(reason: str) -> str:
        """Leave the program.

        Args:
            reason: why
        """
        sys.exit(code)

    model = ScriptedModel([tool_call("leave", reason="done"), final_answer("never")])
    agent = ToolCallingAgent(tools=[leave], model=model, name="leaver", verbosity_level=-1)

    with pytest.raises(SystemExit) as exited:
        agent.run("Leave.")

    assert exited.value.code == code
    status = "ERROR" if code == 3 else OK
    assert traced.tree() == "\n".join([
        f"invoke_agent leaver [run] {status}",
        f"  Step 1 [action] {status}",
        "    chat scripted [llm] OK",
        f"    execute_tool leave [tool] {status}",
    ])
    exceptions = [e.attributes["exception.type"] for s in traced.spans() for e in s.events if e.name == "exception"]
    assert exceptions == (["SystemExit"] * 3 if code == 3 else [])
    assert traced.unended() == []


def test_an_image_result_is_described_not_written_to_a_file(traced: Traced, monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path) -> None:
    from PIL import Image
    from smolagents.agent_types import AgentImage

    from smolagents import Tool

    written: list[object] = []
    to_string = AgentImage.to_string

    def counted(self: AgentImage) -> str:
        written.append(self)
        return to_string(self)

    monkeypatch.setattr(AgentImage, "to_string", counted)
    saved = tmp_path / "chart.png"
    Image.new("RGB", (4, 3), "blue").save(saved)

    class Plot(Tool):
        name = "plot"
        description = "Make a chart."
        inputs = {"saved": {"type": "boolean", "description": "an image already in a file"}}  # noqa: RUF012  # smolagents reads it
        output_type = "image"

        def forward(self, saved: bool) -> object:
            return AgentImage(str(saved_path)) if saved else Image.new("RGB", (20, 10), "red")

    saved_path = saved
    model = ScriptedModel([ToolCalls([ToolCall("plot", {"saved": False}), ToolCall("plot", {"saved": True})]),
                           final_answer("drawn")])
    agent = ToolCallingAgent(tools=[Plot()], model=model, name="painter", verbosity_level=-1)

    assert agent.run("Draw.") == "drawn"

    assert written == []  # untraced, smolagents never calls it here either
    tools = [s for s in traced.spans() if s.attributes.get(c.STEP_KIND) == "tool"]
    assert [(s.attributes["output.value"], s.attributes["output.mime_type"], s.attributes[c.TOOL_RESULT])
            for s in tools] == [('"<AgentImage 20x10 RGB>"', "application/json", '"<AgentImage 20x10 RGB>"'),
                                (f'"{saved}"', "application/json", f'"{saved}"')]


def test_a_long_runs_model_calls_keep_their_identity_at_start_past_the_attribute_limit() -> None:
    # ~3 attributes per input message: by step 10 a model call starts with more than this provider's 40
    # (OpenTelemetry's default 128 is reached by step ~17). The span keeps its newest attributes, and
    # the identity a live view needs at start is written last.
    from opentelemetry.sdk.trace import SpanLimits
    from sa_helpers import CaptureProcessor

    from massgen_tracing.smolagents import SmolagentsInstrumentor

    capture = CaptureProcessor()
    provider = TracerProvider(shutdown_on_exit=False, span_limits=SpanLimits(max_span_attributes=40))
    provider.add_span_processor(capture)
    instrumentor = SmolagentsInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        model = ScriptedModel([tool_call("lookup", key="paris")] * 11 + [final_answer("sunny")])
        agent = ToolCallingAgent(tools=[lookup], model=model, name="long", max_steps=15, verbosity_level=-1)
        assert agent.run("Weather?") == "sunny"
    finally:
        instrumentor.uninstrument()
    chats = [s for s in capture.seen.values() if s.name == "chat scripted"]
    assert len(chats) == 12 and all(s.ended for s in chats)
    assert max(len(s.start) for s in chats) == 40  # the limit was reached
    assert [identity(s.start) for s in chats] == [{
        c.FRAMEWORK: "smolagents", c.STEP_KIND: "llm", c.STEP_NAME: "scripted", c.OPENINFERENCE_SPAN_KIND: "LLM",
        c.GEN_AI_OPERATION: "chat", c.GEN_AI_REQUEST_MODEL: "scripted"}] * 12
