"""`run(stream=True)`: same spans as `run()`, the consumer's code never runs inside our step context,
and a consumer that stops early leaves nothing attached and every span ended."""

from __future__ import annotations

import gc

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from sa_helpers import Traced, lookup
from smolagents.memory import ActionStep, FinalAnswerStep, PlanningStep, ToolCall
from smolagents.models import ChatMessageStreamDelta

from massgen_tracing._internal import convention as c
from massgen_tracing.testing.smolagents_models import ScriptedModel, Text, final_answer, tool_call
from smolagents import CodeAgent, ToolCallingAgent


def weather_agent(**kwargs: object) -> ToolCallingAgent:
    model = ScriptedModel([tool_call("lookup", key="paris"), final_answer("sunny")])
    return ToolCallingAgent(tools=[lookup], model=model, name="w", verbosity_level=-1, **kwargs)  # type: ignore[arg-type]


def test_a_streamed_run_has_the_same_span_tree_as_a_plain_run(traced: Traced) -> None:
    items = list(weather_agent().run("Paris?", stream=True))

    assert [type(i).__name__ for i in items] == [
        "ToolCall", "ToolOutput", "ActionOutput", "ActionStep", "ToolCall", "ToolOutput", "ActionOutput",
        "ActionStep", "FinalAnswerStep"]
    assert traced.tree() == "\n".join([
        "invoke_agent w [run] OK",
        "  Step 1 [action] OK",
        "    chat scripted [llm] OK",
        "    execute_tool lookup [tool] OK",
        "  Step 2 [action] OK",
        "    chat scripted [llm] OK",
        "    final_answer [final_answer] OK",
    ])
    assert traced.span("invoke_agent w").attributes[c.OUTPUT_VALUE] == "sunny"


def test_consumer_code_between_streamed_steps_runs_in_the_consumer_context(
        traced: Traced, provider_and_traced: tuple[TracerProvider, Traced]) -> None:
    tracer = provider_and_traced[0].get_tracer("consumer")
    current_names = []
    with tracer.start_as_current_span("consumer"):
        for item in weather_agent(stream_outputs=True).run("Paris?", stream=True):
            current_names.append(getattr(trace.get_current_span(), "name", None))
            if isinstance(item, ActionStep):
                with tracer.start_as_current_span("consumer work"):
                    pass
    assert set(current_names) == {"consumer"}

    # The consumer's own spans are children of its span, never of our run or step spans.
    assert traced.tree() == "\n".join([
        "consumer [None] UNSET",
        "  invoke_agent w [run] OK",
        "    Step 1 [action] OK",
        "      chat scripted [llm] OK",
        "      execute_tool lookup [tool] OK",
        "    Step 2 [action] OK",
        "      chat scripted [llm] OK",
        "      final_answer [final_answer] OK",
        "  consumer work [None] UNSET",
        "  consumer work [None] UNSET",
    ])


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_breaking_out_mid_step_leaves_no_context_attached_and_ends_every_span(traced: Traced) -> None:
    for item in weather_agent().run("Paris?", stream=True):
        assert isinstance(item, ToolCall)
        break  # mid-step: smolagents' own generator complains ("ignored GeneratorExit"), as untraced
    gc.collect()

    assert not trace.get_current_span().get_span_context().is_valid
    assert traced.unended() == []
    assert traced.tree() == "\n".join([
        "invoke_agent w [run] UNSET",
        "  Step 1 [action] UNSET",
        "    chat scripted [llm] OK",
    ])
    assert traced.span("invoke_agent w").attributes[c.ABANDONED] is True
    assert traced.span("Step 1").attributes[c.ABANDONED] is True


def test_closing_a_streamed_run_between_steps_ends_the_run_after_its_finished_steps(traced: Traced) -> None:
    stream = weather_agent().run("Paris?", stream=True)
    for item in stream:
        if isinstance(item, ActionStep):
            break
    stream.close()

    assert not trace.get_current_span().get_span_context().is_valid
    assert traced.unended() == []
    assert traced.tree() == "\n".join([
        "invoke_agent w [run] UNSET",
        "  Step 1 [action] OK",
        "    chat scripted [llm] OK",
        "    execute_tool lookup [tool] OK",
    ])
    assert traced.span("invoke_agent w").attributes[c.ABANDONED] is True
    assert c.ABANDONED not in traced.span("Step 1").attributes


def test_stopping_right_after_a_planning_step_leaves_that_step_finished_not_abandoned(traced: Traced) -> None:
    model = ScriptedModel([Text("1. Look it up."), tool_call("lookup", key="paris"), final_answer("sunny")])
    agent = ToolCallingAgent(tools=[lookup], model=model, name="w", verbosity_level=-1, planning_interval=1)
    stream = agent.run("Paris?", stream=True)
    for item in stream:
        if isinstance(item, PlanningStep):
            break
    stream.close()

    assert traced.unended() == []
    assert traced.tree() == "\n".join([
        "invoke_agent w [run] UNSET",
        "  plan w [planning] OK",
        "    chat scripted [llm] OK",
    ])
    assert traced.span("invoke_agent w").attributes[c.ABANDONED] is True
    plan = traced.span("plan w").attributes
    assert c.ABANDONED not in plan and plan[c.PLAN] == item.plan


def test_a_streamed_run_that_is_never_iterated_records_nothing(traced: Traced) -> None:
    stream = weather_agent().run("Paris?", stream=True)
    del stream
    gc.collect()

    assert traced.spans() == []


def test_stream_outputs_deltas_reach_the_consumer_and_the_model_call_span(traced: Traced) -> None:
    model = ScriptedModel(["Thought: sunny.\n<code>\nfinal_answer('sunny')\n</code>"])
    agent = CodeAgent(tools=[], model=model, name="coder", stream_outputs=True, verbosity_level=-1)
    items = list(agent.run("Paris?", stream=True))

    deltas = [i.content for i in items if isinstance(i, ChatMessageStreamDelta) and i.content]
    assert isinstance(items[-1], FinalAnswerStep) and items[-1].output == "sunny"
    llm = traced.span("chat scripted")
    assert [attrs[c.DELTA_TEXT] for _, attrs in traced.events(llm)] == deltas


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_model_stream_abandoned_at_its_first_delta_reports_no_token_usage(traced: Traced) -> None:
    for item in weather_agent(stream_outputs=True).run("Paris?", stream=True):
        if isinstance(item, ChatMessageStreamDelta):
            break
    gc.collect()

    assert traced.unended() == []
    assert traced.tree() == "\n".join([
        "invoke_agent w [run] UNSET",
        "  Step 1 [action] UNSET",
        "    chat scripted [llm] UNSET",
    ])
    llm = traced.span("chat scripted").attributes
    assert llm[c.ABANDONED] is True
    # Usage comes with the stream's last chunk: unknown here, so absent rather than 0.
    assert [k for k in llm if "token" in k] == []
    assert [k for k in traced.span("invoke_agent w").attributes if k.startswith("gen_ai.usage")] == [
        c.GEN_AI_INPUT_TOKENS, c.GEN_AI_OUTPUT_TOKENS]
