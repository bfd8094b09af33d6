"""`_oi_end.update_span` against OpenInference's own `_update_span`: same attributes, same order, same status.

Every run that ends while these graphs execute is written twice more, onto two scratch spans: once by
OpenInference's function and once by ours; the two must agree attribute for attribute.
"""

from __future__ import annotations

import dataclasses
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


_MASK_KEYS = [
    "input.value", "input.mime_type", "output.value", "output.mime_type", "metadata", "session.id",
    "openinference.span.kind", "massgen.step.name", "llm.invocation_parameters", "llm.tools.0.tool.json_schema",
    "llm.input_messages.0.message.content", "llm.input_messages.0.message.contents.0.message_content.text",
    "llm.input_messages.0.message.contents.1.message_content.image.image.url",
    "llm.output_messages.0.message.content", "llm.output_messages.0.message.contents.0.message_content.image.image.url",
    "llm.prompts", "llm.choices", "retrieval.documents.0.document.content", "reranker.query",
    "embedding.embeddings.0.embedding.vector", "embedding.embeddings.0.embedding.text", "output.images.0.image.url",
]
_MASK_VALUES: list[Any] = ["hello", "data:image/png;base64," + "A" * 40_000, "data:image/png;base64,AAAA", 7,
                           [1.5, 2.5], lambda: "from a callable", None]
_HIDE_SWITCHES = [f.name for f in dataclasses.fields(TraceConfig) if f.name.startswith("hide_")]


@pytest.mark.parametrize("switch", [None, *_HIDE_SWITCHES])
def test_masker_answers_as_trace_config_mask(switch: str | None) -> None:
    config = TraceConfig(**({switch: True} if switch else {}), base64_image_max_length=1000)
    mask = _oi_end.masker(config)
    assert (mask == config.mask) is (switch is not None)  # the shortcut only with every switch off
    for key in _MASK_KEYS:
        for value in _MASK_VALUES:
            assert mask(key, value) == config.mask(key, value), (key, value)


def test_masker_uses_a_configs_own_mask_when_it_has_fields_we_do_not_know() -> None:
    @dataclasses.dataclass(frozen=True)
    class NewerConfig(TraceConfig):
        hide_everything_new: bool = False

    newer = NewerConfig()
    assert _oi_end.masker(newer) == newer.mask
    assert _oi_end.masker(TraceConfig()) != TraceConfig().mask


def test_set_important_keeps_the_kind_aside_as_the_span_does() -> None:
    for config in (TraceConfig(), TraceConfig(hide_inputs=True)):
        theirs = OITracer(_SCRATCH, config=config).start_span("theirs")
        ours = OITracer(_SCRATCH, config=config).start_span("ours")
        theirs.set_attribute("openinference.span.kind", "CHAIN")
        _oi_end.set_important(ours, "openinference.span.kind", "CHAIN")
        theirs.end()
        ours.end()
        assert dict(ours._self_important_attributes) == dict(theirs._self_important_attributes) == {
            "openinference.span.kind": "CHAIN"}
        assert dict(ours.__wrapped__.attributes) == dict(theirs.__wrapped__.attributes)

    class Plain:  # any other span: its own set_attribute
        def __init__(self) -> None:
            self.set: list[tuple[str, Any]] = []

        def set_attribute(self, key: str, value: Any) -> None:
            self.set.append((key, value))

    plain = Plain()
    _oi_end.set_important(plain, "openinference.span.kind", "TOOL")
    assert plain.set == [("openinference.span.kind", "TOOL")]


def _good(n: int) -> Iterator[tuple[str, Any]]:
    yield from ((f"good{n}.{i}", i) for i in range(2))


def _fails_midway() -> Iterator[tuple[str, Any]]:
    yield "before", 1
    raise RuntimeError("extractor bug")


def _mixed_list() -> Iterator[tuple[str, Any]]:  # flattening what it gives fails at the top level
    yield "m", [{"k": 1}, "not a mapping"]
    yield "after", 2


def _three_tuple() -> Iterator[Any]:
    yield "a", 1, "extra"


@pytest.mark.parametrize("middle", [_fails_midway, _mixed_list, _three_tuple, "plain iterable failing"])
def test_unwrapped_extractors_fail_as_openinferences_wrapped_ones(
        middle: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """`_flatten_each` over the bare extractors ends what OpenInference's wrappers and `_flatten` end."""
    from itertools import chain

    def plain() -> Iterator[tuple[str, Any]]:
        return map(lambda i: ("p", 1 // i), [1, 0])  # a failing iterable, not a generator

    middle = plain if middle == "plain iterable failing" else middle
    monkeypatch.setattr(_oi_end, "_UNWRAPPED_CODES", {f.__code__ for f in (_good, _fails_midway, _mixed_list,
                                                                           _three_tuple)})

    def wrap(f: Any) -> Any:
        return f if f is plain else oi.stop_on_exception(f)

    with caplog.at_level(logging.ERROR):
        theirs = list(oi._flatten(chain(wrap(_good)(1), wrap(middle)(), wrap(_good)(2))))
        their_logs = len(caplog.records)
        caplog.clear()
        ours = _oi_end._flatten_each(_oi_end._each(_good(1), middle(), _good(2)))
    assert ours == theirs
    assert len(caplog.records) == their_logs == 1
    assert _oi_end._unwrapped(oi.stop_on_exception(_good)) is _good
    assert _oi_end._unwrapped(_good) is None and _oi_end._unwrapped(len) is None
