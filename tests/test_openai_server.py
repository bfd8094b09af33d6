"""The scripted OpenAI-compatible server answers openai, LangChain and smolagents exactly as scripted."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from massgen_tracing.testing.openai_server import (
    Error,
    ScriptedOpenAIServer,
    Text,
    ToolCall,
    ToolCalls,
    echo_responder,
    reply_from_json,
)

USER = [{"role": "user", "content": "What is the capital of France?"}]  # 6 words


def client(srv: ScriptedOpenAIServer, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.base_url, api_key="test", **{"max_retries": 0, **kwargs})


# --- raw openai client -------------------------------------------------------------------------------


def test_non_streamed_text_is_a_chat_completion_with_word_count_usage() -> None:
    with ScriptedOpenAIServer([Text("Paris is the capital.")]) as srv:
        response = client(srv).chat.completions.create(model="gpt-test", messages=USER)
        assert srv.requests == [{"model": "gpt-test", "messages": USER}]
    assert response.id == "chatcmpl-1"
    assert response.object == "chat.completion"
    assert response.model == "gpt-test"
    assert len(response.choices) == 1
    choice = response.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Paris is the capital."
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens, response.usage.total_tokens) == (
        6,
        4,
        10,
    )


def test_streamed_text_reassembles_to_the_script_and_ends_with_a_usage_chunk() -> None:
    text = "Paris is the capital."
    with ScriptedOpenAIServer([Text(text)]) as srv:
        chunks = list(
            client(srv).chat.completions.create(
                model="gpt-test",
                messages=USER,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    # role chunk, 4 word chunks, finish chunk, usage chunk
    assert len(chunks) == 7
    assert {c.id for c in chunks} == {"chatcmpl-1"}
    assert {c.model for c in chunks} == {"gpt-test"}
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    pieces = [c.choices[0].delta.content for c in chunks[1:5]]
    assert pieces == ["Paris", " is", " the", " capital."]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert [c.choices[0].finish_reason for c in chunks[:-1]] == [None] * 5 + ["stop"]
    assert [c.usage for c in chunks[:-1]] == [None] * 6
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (6, 4)
    assert chunks[-1].usage.total_tokens == 10


def test_streamed_text_has_no_usage_chunk_unless_include_usage_is_requested() -> None:
    with ScriptedOpenAIServer([Text("Paris."), Text("Lyon.")]) as srv:
        plain = list(client(srv).chat.completions.create(model="m", messages=USER, stream=True))
        declined = list(
            client(srv).chat.completions.create(
                model="m",
                messages=USER,
                stream=True,
                stream_options={"include_usage": False},
            )
        )
    for chunks, text in ((plain, "Paris."), (declined, "Lyon.")):
        assert [len(c.choices) for c in chunks] == [1, 1, 1]
        assert [c.usage for c in chunks] == [None, None, None]
        assert [c.choices[0].delta.content for c in chunks] == ["", text, None]
        assert [c.choices[0].finish_reason for c in chunks] == [None, None, "stop"]


def test_text_deltas_split_on_word_boundaries_and_keep_every_space_and_newline() -> None:
    text = "  Two  spaces,\na newline\tand a tab. "
    with ScriptedOpenAIServer([Text(text)]) as srv:
        chunks = list(client(srv).chat.completions.create(model="m", messages=USER, stream=True))
    pieces = [c.choices[0].delta.content for c in chunks[1:-1]]
    assert pieces == ["  Two", "  spaces,", "\na", " newline", "\tand", " a", " tab.", " "]
    assert "".join(p or "" for p in pieces) == text


def test_streamed_tool_call_arguments_reassemble_to_the_scripted_json() -> None:
    weather_args = {"city": "Paris", "units": "celsius", "days": [1, 2, 3]}
    reply = ToolCalls(
        [
            ToolCall("get_weather", weather_args),
            ToolCall("get_time", {"tz": "Europe/Paris"}, id="call_custom"),
        ],
        text="Let me check.",
    )
    with ScriptedOpenAIServer([reply]) as srv:
        chunks = list(
            client(srv).chat.completions.create(
                model="m",
                messages=USER,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join(d.content or "" for d in deltas) == "Let me check."
    call_deltas = [tc for d in deltas for tc in (d.tool_calls or [])]
    heads = [tc for tc in call_deltas if tc.id is not None]
    assert [(h.index, h.id, h.type, h.function.name, h.function.arguments) for h in heads if h.function] == [
        (0, "call_1", "function", "get_weather", ""),
        (1, "call_custom", "function", "get_time", ""),
    ]
    fragments = [tc for tc in call_deltas if tc.id is None]
    # Argument fragments carry only index and arguments, like OpenAI's.
    assert {(f.type, f.function.name if f.function else "missing") for f in fragments} == {(None, None)}
    arguments = {0: "", 1: ""}
    for tc in call_deltas:
        assert tc.function is not None
        arguments[tc.index] += tc.function.arguments or ""
    assert json.loads(arguments[0]) == weather_args
    assert json.loads(arguments[1]) == {"tz": "Europe/Paris"}
    assert len([f for f in fragments if f.index == 0]) == 7  # 56 characters in 8-character fragments
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].usage is not None
    # completion: "Let me check." 3 + get_weather 1 + 8 argument words + get_time 1 + 2 argument words
    assert chunks[-1].usage.completion_tokens == 15


def test_non_streamed_tool_calls_carry_ids_names_and_arguments() -> None:
    reply = ToolCalls(
        [ToolCall("lookup", {"q": "capital of France"}), ToolCall("raw", '{"x": 1,', id="id-7")]
    )
    with ScriptedOpenAIServer([reply]) as srv:
        response = client(srv).chat.completions.create(model="m", messages=USER)
    message = response.choices[0].message
    assert message.content is None
    assert response.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls is not None
    assert [(tc.id, tc.type, tc.function.name, tc.function.arguments) for tc in message.tool_calls] == [
        ("call_1", "function", "lookup", '{"q": "capital of France"}'),
        ("id-7", "function", "raw", '{"x": 1,'),  # str arguments go out verbatim, even broken JSON
    ]


def test_generated_tool_call_ids_count_up_across_the_replies_of_one_server() -> None:
    script = [ToolCalls([ToolCall("a", {}), ToolCall("b", {})]), ToolCalls([ToolCall("c", {})])]
    with ScriptedOpenAIServer(script) as srv:
        first = client(srv).chat.completions.create(model="m", messages=USER)
        second = client(srv).chat.completions.create(model="m", messages=USER)
    assert [tc.id for tc in first.choices[0].message.tool_calls or []] == ["call_1", "call_2"]
    assert [tc.id for tc in second.choices[0].message.tool_calls or []] == ["call_3"]
    assert (first.id, second.id) == ("chatcmpl-1", "chatcmpl-2")


def test_explicit_token_counts_override_the_word_count_rule() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "one two"}, {"type": "image_url", "image_url": {}}],
        },
    ]
    with ScriptedOpenAIServer([Text("a b c", completion_tokens=42), Text("x", prompt_tokens=7)]) as srv:
        first = client(srv).chat.completions.create(model="m", messages=messages)
        second = client(srv).chat.completions.create(model="m", messages=messages)
    assert first.usage is not None and second.usage is not None
    assert (first.usage.prompt_tokens, first.usage.completion_tokens, first.usage.total_tokens) == (4, 42, 46)
    assert (second.usage.prompt_tokens, second.usage.completion_tokens, second.usage.total_tokens) == (
        7,
        1,
        8,
    )


@pytest.mark.parametrize(
    ("status", "error_class", "error_type"),
    [
        (400, openai.BadRequestError, "invalid_request_error"),
        (401, openai.AuthenticationError, "authentication_error"),
        (429, openai.RateLimitError, "rate_limit_error"),
        (500, openai.InternalServerError, "server_error"),
        (503, openai.InternalServerError, "server_error"),
    ],
)
def test_error_reply_makes_the_openai_client_raise_the_matching_status_error(
    status: int, error_class: type[openai.APIStatusError], error_type: str
) -> None:
    with ScriptedOpenAIServer([Error(status, "scripted failure"), Error(status, "again")]) as srv:
        with pytest.raises(error_class) as non_streamed:
            client(srv).chat.completions.create(model="m", messages=USER)
        with pytest.raises(error_class) as streamed:
            client(srv).chat.completions.create(model="m", messages=USER, stream=True)
        assert srv.errors == []  # a scripted error is not a server problem
    assert non_streamed.value.status_code == status
    assert non_streamed.value.body == {
        "message": "scripted failure",
        "type": error_type,
        "param": None,
        "code": None,
    }
    assert streamed.value.status_code == status
    assert streamed.value.message == f"Error code: {status} - again"


def test_openai_client_retries_an_error_reply_and_gets_the_next_scripted_reply() -> None:
    with ScriptedOpenAIServer([Error(503, "overloaded", retry_after=0.01), Text("Recovered.")]) as srv:
        response = client(srv, max_retries=1).chat.completions.create(model="m", messages=USER)
        assert len(srv.requests) == 2
    assert response.choices[0].message.content == "Recovered."


def test_delay_holds_the_reply_back() -> None:
    with ScriptedOpenAIServer([Text("slow", delay=0.3)]) as srv:
        started = time.monotonic()
        response = client(srv).chat.completions.create(model="m", messages=USER)
        elapsed = time.monotonic() - started
    assert response.choices[0].message.content == "slow"
    assert 0.3 <= elapsed < 5.0


def test_chunk_delay_spaces_out_the_streamed_chunks() -> None:
    with ScriptedOpenAIServer([Text("one two three")], chunk_delay=0.1) as srv:
        started = time.monotonic()
        arrivals = []
        for _chunk in client(srv).chat.completions.create(model="m", messages=USER, stream=True):
            arrivals.append(time.monotonic())
    assert len(arrivals) == 5  # role, 3 words, finish: 4 delays before the finish chunk is sent
    assert arrivals[-1] - started >= 0.4
    # The first chunk arrives while the rest are still being paced out, not in one buffered burst.
    assert arrivals[-1] - arrivals[0] >= 0.2


# --- protocol edges ----------------------------------------------------------------------------------


def test_script_exhausted_answers_500_naming_the_cause_and_records_it() -> None:
    with ScriptedOpenAIServer([Text("only one")]) as srv:
        url = f"{srv.base_url}/chat/completions"
        assert httpx.post(url, json={"model": "m", "messages": USER}).status_code == 200
        response = httpx.post(url, json={"model": "m", "messages": USER})
        expected = (
            "ScriptedOpenAIServer script exhausted: all 1 scripted replies were used, "
            "so chat request #2 has no reply"
        )
        assert response.status_code == 500
        assert response.json() == {
            "error": {"message": expected, "type": "server_error", "param": None, "code": None}
        }
        assert srv.errors == [expected]
        assert len(srv.requests) == 2


def test_callable_responder_sees_each_request_and_its_failures_become_500s() -> None:
    def responder(request: dict[str, Any]) -> Text:
        question = request["messages"][-1]["content"]
        if question == "boom":
            raise RuntimeError("responder bug")
        return Text(f"echo {question}")

    with ScriptedOpenAIServer(responder) as srv:
        ok = client(srv).chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(openai.InternalServerError):
            client(srv).chat.completions.create(model="m", messages=[{"role": "user", "content": "boom"}])
        assert srv.errors == [
            "ScriptedOpenAIServer responder failed on chat request #2: RuntimeError('responder bug')"
        ]
    assert ok.choices[0].message.content == "echo hi"


def test_concurrent_requests_are_each_paired_with_the_scripted_reply_at_their_position() -> None:
    script = [Text(f"reply {i}", delay=0.02) for i in range(8)]
    answers: dict[str, str] = {}

    def ask(n: int, srv: ScriptedOpenAIServer) -> None:
        response = client(srv).chat.completions.create(
            model="m", messages=[{"role": "user", "content": f"q{n}"}]
        )
        answers[f"q{n}"] = response.choices[0].message.content or ""

    with ScriptedOpenAIServer(script) as srv:
        threads = [threading.Thread(target=ask, args=(n, srv)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        order = [r["messages"][0]["content"] for r in srv.requests]
    assert sorted(order) == [f"q{n}" for n in range(8)]
    assert {q: answers[q] for q in order} == {q: f"reply {i}" for i, q in enumerate(order)}


def test_bad_json_body_is_rejected_with_400_and_a_clear_message() -> None:
    with ScriptedOpenAIServer([Text("unused")]) as srv:
        response = httpx.post(
            f"{srv.base_url}/chat/completions",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        not_an_object = httpx.post(f"{srv.base_url}/chat/completions", json=[1, 2])
        assert srv.requests == []
        assert len(srv.errors) == 2
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"] == (
        "Request body is not valid JSON: "
        "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"
    )
    assert not_an_object.status_code == 400
    assert not_an_object.json()["error"]["message"] == "Request body must be a JSON object, got list"


def test_unknown_paths_answer_404_json_and_models_lists_scripted() -> None:
    with ScriptedOpenAIServer([]) as srv:
        models = client(srv).models.list()
        get_missing = httpx.get(f"{srv.base_url}/nope")
        post_missing = httpx.post(f"{srv.base_url}/responses", json={"input": "hi"})
        assert srv.errors == [
            "404: Unknown path: GET /v1/nope",
            "404: Unknown path: POST /v1/responses (this server only implements /v1/chat/completions)",
        ]
    assert [m.id for m in models.data] == ["scripted"]
    assert get_missing.status_code == 404
    assert get_missing.json()["error"]["message"] == "Unknown path: GET /v1/nope"
    assert post_missing.status_code == 404
    assert post_missing.headers["content-type"] == "application/json"


def test_server_prints_nothing_even_for_rejected_requests_and_dropped_streams(
    capfd: pytest.CaptureFixture[str],
) -> None:
    with ScriptedOpenAIServer([Text("one two three four five six")], chunk_delay=0.05) as srv:
        httpx.post(f"{srv.base_url}/chat/completions", content=b"nope")
        httpx.get(f"{srv.base_url}/missing")
        body = {"model": "m", "messages": USER, "stream": True}
        with httpx.stream("POST", f"{srv.base_url}/chat/completions", json=body) as response:
            first = next(response.iter_lines())
        time.sleep(0.2)  # the server keeps writing into the closed connection
        assert srv.errors == [
            "400: Request body is not valid JSON: Expecting value: line 1 column 1 (char 0)",
            "404: Unknown path: GET /v1/missing",
        ]
    assert first.startswith('data: {"id": "chatcmpl-1", ')
    assert capfd.readouterr() == ("", "")


def test_stop_is_prompt_and_releases_the_port_even_during_a_slow_reply() -> None:
    srv = ScriptedOpenAIServer([Text("never sent", delay=30)]).start()
    port = srv.port
    outcome: list[BaseException] = []

    def slow_call() -> None:
        try:
            client(srv, timeout=10).chat.completions.create(model="m", messages=USER)
        except openai.APIConnectionError as exc:
            outcome.append(exc)

    caller = threading.Thread(target=slow_call)
    caller.start()
    deadline = time.monotonic() + 5
    while not srv.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(srv.requests) == 1

    started = time.monotonic()
    srv.stop()
    assert time.monotonic() - started < 1.0
    caller.join(5)
    assert [type(e) for e in outcome] == [openai.APIConnectionError]

    # The same port is free for a new server straight away.
    with ScriptedOpenAIServer([Text("second life")], port=port) as again:
        assert again.base_url == f"http://127.0.0.1:{port}/v1"
        assert client(again).chat.completions.create(model="m", messages=USER).choices[0].message.content == (
            "second life"
        )
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))


def test_script_json_forms_build_the_matching_replies() -> None:
    assert reply_from_json({"text": "hi", "delay": 0.5}) == Text("hi", delay=0.5)
    assert reply_from_json("plain") == Text("plain")
    assert reply_from_json(
        {"tool_calls": [{"name": "f", "arguments": {"a": 1}}, {"name": "g", "id": "x"}]}
    ) == (ToolCalls([ToolCall("f", {"a": 1}), ToolCall("g", {}, id="x")]))
    assert reply_from_json({"error": 429, "message": "slow down"}) == Error(429, "slow down")
    with pytest.raises(ValueError, match=r"unknown reply keys \['txt'\]"):
        reply_from_json({"txt": "typo"})
    assert echo_responder(
        {"messages": [{"role": "user", "content": "first"}, {"role": "user", "content": "last"}]}
    ) == (Text('You said: "last"'))


# --- LangChain ---------------------------------------------------------------------------------------


def test_langchain_chat_openai_invoke_returns_the_scripted_text_and_usage() -> None:
    from langchain_openai import ChatOpenAI

    with ScriptedOpenAIServer([Text("Paris is the capital.")]) as srv:
        llm = ChatOpenAI(base_url=srv.base_url, api_key="test", model="scripted", max_retries=0)
        message = llm.invoke("What is the capital of France?")
    assert message.content == "Paris is the capital."
    assert message.usage_metadata is not None
    assert (message.usage_metadata["input_tokens"], message.usage_metadata["output_tokens"]) == (6, 4)
    assert message.response_metadata["finish_reason"] == "stop"
    assert message.response_metadata["model_name"] == "scripted"


def test_langchain_stream_with_stream_usage_gives_usage_metadata() -> None:
    from langchain_core.messages import AIMessageChunk
    from langchain_openai import ChatOpenAI

    with ScriptedOpenAIServer([Text("Paris is the capital.")]) as srv:
        llm = ChatOpenAI(base_url=srv.base_url, api_key="test", model="scripted", stream_usage=True)
        chunks = list(llm.stream("What is the capital of France?"))
        assert srv.requests[0]["stream_options"] == {"include_usage": True}
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    assert isinstance(total, AIMessageChunk)
    assert total.content == "Paris is the capital."
    assert total.usage_metadata is not None
    assert (total.usage_metadata["input_tokens"], total.usage_metadata["output_tokens"]) == (6, 4)
    assert total.usage_metadata["total_tokens"] == 10


def test_langchain_bind_tools_turns_the_scripted_call_into_ai_message_tool_calls() -> None:
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    @tool
    def get_weather(city: str) -> str:
        """Weather for a city."""
        return "sunny"

    with ScriptedOpenAIServer([ToolCalls([ToolCall("get_weather", {"city": "Paris"})])]) as srv:
        llm = ChatOpenAI(base_url=srv.base_url, api_key="test", model="scripted", max_retries=0)
        message = llm.bind_tools([get_weather]).invoke("Weather in Paris?")
        assert [t["function"]["name"] for t in srv.requests[0]["tools"]] == ["get_weather"]
    assert message.tool_calls == [
        {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1", "type": "tool_call"}
    ]


# --- smolagents --------------------------------------------------------------------------------------


def _weather_tool() -> Any:
    from smolagents import Tool

    class GetWeather(Tool):
        name = "get_weather"
        description = "Weather for a city."
        inputs = {"city": {"type": "string", "description": "The city."}}  # noqa: RUF012 - smolagents' API
        output_type = "string"

        def forward(self, city: str) -> str:
            return "sunny"

    return GetWeather()


def test_smolagents_generate_returns_the_scripted_text_and_token_usage() -> None:
    from smolagents import ChatMessage, MessageRole, OpenAIServerModel

    with ScriptedOpenAIServer([Text("Paris is the capital.")]) as srv:
        model = OpenAIServerModel(model_id="scripted", api_base=srv.base_url, api_key="test")
        question = [{"type": "text", "text": "What is the capital of France?"}]
        message = model.generate([ChatMessage(role=MessageRole.USER, content=question)])
        assert srv.requests[0]["messages"] == [{"role": "user", "content": question}]
    assert message.content == "Paris is the capital."
    assert message.tool_calls is None
    assert message.token_usage is not None
    assert (message.token_usage.input_tokens, message.token_usage.output_tokens) == (6, 4)


def test_smolagents_generate_with_tools_gives_chat_message_tool_calls() -> None:
    from smolagents import ChatMessage, MessageRole, OpenAIServerModel

    with ScriptedOpenAIServer([ToolCalls([ToolCall("get_weather", {"city": "Paris"})])]) as srv:
        model = OpenAIServerModel(model_id="scripted", api_base=srv.base_url, api_key="test")
        message = model.generate(
            [ChatMessage(role=MessageRole.USER, content=[{"type": "text", "text": "Weather in Paris?"}])],
            tools_to_call_from=[_weather_tool()],
        )
        assert srv.requests[0]["tool_choice"] == "required"
    assert message.tool_calls is not None
    assert [(tc.id, tc.type, tc.function.name, tc.function.arguments) for tc in message.tool_calls] == [
        ("call_1", "function", "get_weather", '{"city": "Paris"}')
    ]


def test_smolagents_generate_stream_reassembles_text_and_reports_usage() -> None:
    from smolagents import ChatMessage, MessageRole, OpenAIServerModel

    with ScriptedOpenAIServer([Text("Paris is the capital.")]) as srv:
        model = OpenAIServerModel(model_id="scripted", api_base=srv.base_url, api_key="test")
        deltas = list(
            model.generate_stream([ChatMessage(role=MessageRole.USER, content="Capital of France?")])
        )
    assert "".join(d.content or "" for d in deltas) == "Paris is the capital."
    usages = [(d.token_usage.input_tokens, d.token_usage.output_tokens) for d in deltas if d.token_usage]
    assert usages == [(3, 4)]


# --- command line ------------------------------------------------------------------------------------


def _start_cli(*args: str) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "massgen_tracing.testing.openai_server", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline().decode()
    match = re.fullmatch(r"serving on (http://127\.0\.0\.1:\d+/v1)\n", line)
    if not match:
        proc.kill()
        pytest.fail(f"unexpected first stderr line {line!r}; rest: {proc.communicate()[1]!r}")
    return proc, match.group(1)


def _interrupt(proc: subprocess.Popen[bytes], sig: signal.Signals) -> bytes:
    """Send sig and return stdout; a server that does not exit in time is killed, never leaked."""
    proc.send_signal(sig)
    try:
        stdout, _ = proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return stdout


def test_command_line_serves_a_script_file_until_ctrl_c(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps([{"tool_calls": [{"name": "f", "arguments": {"x": 1}}]}, {"text": "done"}]))
    proc, base_url = _start_cli("--script", str(script))
    try:
        llm = openai.OpenAI(base_url=base_url, api_key="test", max_retries=0)
        first = llm.chat.completions.create(model="m", messages=USER)
        second = llm.chat.completions.create(model="m", messages=USER)
    finally:
        stdout = _interrupt(proc, signal.SIGINT)
    assert [
        (tc.function.name, tc.function.arguments) for tc in first.choices[0].message.tool_calls or []
    ] == [("f", '{"x": 1}')]
    assert second.choices[0].message.content == "done"
    assert proc.returncode == 0
    assert stdout == b""


def test_command_line_without_a_script_quotes_the_last_user_message_until_sigterm() -> None:
    proc, base_url = _start_cli()
    try:
        llm = openai.OpenAI(base_url=base_url, api_key="test", max_retries=0)
        response = llm.chat.completions.create(model="m", messages=USER)
    finally:
        stdout = _interrupt(proc, signal.SIGTERM)
    assert response.choices[0].message.content == 'You said: "What is the capital of France?"'
    assert proc.returncode == 0
    assert stdout == b""
