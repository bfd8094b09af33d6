"""A scripted, offline OpenAI-compatible chat-completions server on 127.0.0.1 for tests, examples and demos.
Speaks enough /v1 (JSON, SSE streaming, tool calls, usage, errors) for openai, LangChain, smolagents, MassGen.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, TypeAlias, cast

__all__ = [
    "Error",
    "Reply",
    "Responder",
    "ScriptedOpenAIServer",
    "Text",
    "ToolCall",
    "ToolCalls",
    "completion_token_count",
    "echo_responder",
    "load_script",
    "main",
    "prompt_token_count",
    "reply_from_json",
]

MODEL_ID = "scripted"
_CHAT_PATH = "/v1/chat/completions"
_MODELS_PATH = "/v1/models"
# Small enough that stop() returns well under a second, large enough not to spin.
_POLL_INTERVAL = 0.05
# Argument fragments roughly the size of real model tokens, so clients really have to concatenate.
_ARGUMENT_FRAGMENT_CHARS = 8


def _check_delay(delay: float) -> None:
    if delay < 0:
        raise ValueError(f"delay must be >= 0 seconds, got {delay!r}")


@dataclass(frozen=True)
class Text:
    """An assistant text reply; ``finish_reason`` is ``stop``.

    Token counts left as ``None`` follow a deterministic rule:

    * ``prompt_tokens``: whitespace-separated words in the text content of every request message (string
      contents, plus the ``"text"`` of each text part when a content is a list of parts; tool-call arguments,
      images and other parts count zero);
    * ``completion_tokens``: whitespace-separated words in the reply text, plus, for each tool call of a
      :class:`ToolCalls`, the words in its name and in its arguments JSON string (``{"city": "Paris"}`` is 2);
    * ``total_tokens`` is their sum.
    """

    text: str
    prompt_tokens: int | None = field(default=None, kw_only=True)
    completion_tokens: int | None = field(default=None, kw_only=True)
    delay: float = field(default=0.0, kw_only=True)

    def __post_init__(self) -> None:
        _check_delay(self.delay)


@dataclass(frozen=True)
class ToolCall:
    """One function call; dict ``arguments`` are sent as their ``json.dumps``, a str is sent verbatim."""

    name: str
    arguments: dict[str, Any] | str
    id: str | None = None


@dataclass(frozen=True)
class ToolCalls:
    """An assistant turn that calls tools (optionally with text first); ``finish_reason`` is ``tool_calls``.

    Token counts left as ``None`` follow the rule documented on :class:`Text`.
    """

    calls: list[ToolCall]
    text: str = ""
    prompt_tokens: int | None = field(default=None, kw_only=True)
    completion_tokens: int | None = field(default=None, kw_only=True)
    delay: float = field(default=0.0, kw_only=True)

    def __post_init__(self) -> None:
        _check_delay(self.delay)
        if not self.calls:
            raise ValueError("ToolCalls needs at least one ToolCall; use Text for a plain answer")


@dataclass(frozen=True)
class Error:
    """An HTTP error answer with an OpenAI-style ``{"error": {...}}`` body, for retry and failure tests.

    ``retry_after`` (seconds) adds ``retry-after``/``retry-after-ms`` headers, which the openai client
    honours, so retry tests need not wait for its default exponential backoff.
    """

    status: int
    message: str
    delay: float = field(default=0.0, kw_only=True)
    retry_after: float | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        _check_delay(self.delay)
        if not 400 <= self.status <= 599:
            raise ValueError(f"Error.status must be an HTTP error status (400-599), got {self.status!r}")


Reply: TypeAlias = Text | ToolCalls | Error
# A bare str anywhere a Reply is expected is shorthand for Text(str).
Responder: TypeAlias = Sequence[Reply | str] | Callable[[dict[str, Any]], Reply | str]


def _as_reply(value: object) -> Reply:
    if isinstance(value, str):
        return Text(value)
    if isinstance(value, Text | ToolCalls | Error):
        return value
    raise TypeError(f"expected Text, ToolCalls, Error or str, got {type(value).__name__}: {value!r}")


def _words(text: str) -> int:
    return len(text.split())


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def prompt_token_count(request: dict[str, Any]) -> int:
    """Words in the text content of all request messages (the rule is documented on :class:`Text`)."""
    messages = request.get("messages")
    if not isinstance(messages, list):
        return 0
    return sum(_words(_content_text(m.get("content"))) for m in messages if isinstance(m, dict))


def _arguments_json(call: ToolCall) -> str:
    return call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)


def completion_token_count(reply: Text | ToolCalls) -> int:
    """Words in the reply text plus each tool call's name and arguments JSON (rule on :class:`Text`)."""
    count = _words(reply.text)
    if isinstance(reply, ToolCalls):
        count += sum(_words(c.name) + _words(_arguments_json(c)) for c in reply.calls)
    return count


def _last_user_text(request: dict[str, Any]) -> str:
    messages = request.get("messages")
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                return _content_text(message.get("content"))
    return ""


def echo_responder(request: dict[str, Any]) -> Reply:
    """The default CLI responder: a deterministic text that quotes the last user message."""
    return Text(f'You said: "{_last_user_text(request)}"')


_REPLY_KEYS = frozenset(
    {"text", "tool_calls", "error", "message", "delay", "prompt_tokens", "completion_tokens", "retry_after"}
)


def reply_from_json(obj: object) -> Reply:
    """Build a reply from its script form: ``{"text"}``, ``{"tool_calls": [...]}`` or ``{"error": 500}``.

    Every form accepts ``"delay"``; text and tool-call forms accept ``"prompt_tokens"`` and
    ``"completion_tokens"``; a tool-call form may carry ``"text"`` too; a bare JSON string is a text reply;
    an error form takes ``"message"`` and ``"retry_after"``.
    """
    if isinstance(obj, str):
        return Text(obj)
    if not isinstance(obj, dict):
        raise ValueError(f"a reply must be a JSON object or string, got {obj!r}")
    unknown = set(obj) - _REPLY_KEYS
    if unknown:
        raise ValueError(f"unknown reply keys {sorted(unknown)}; allowed: {sorted(_REPLY_KEYS)}")
    delay = float(obj.get("delay", 0.0))
    if "error" in obj:
        retry_after = obj.get("retry_after")
        return Error(
            int(obj["error"]),
            str(obj.get("message", "scripted error")),
            delay=delay,
            retry_after=None if retry_after is None else float(retry_after),
        )
    tokens = {k: int(obj[k]) for k in ("prompt_tokens", "completion_tokens") if obj.get(k) is not None}
    if "tool_calls" in obj:
        raw_calls = obj["tool_calls"]
        if not isinstance(raw_calls, list):
            raise ValueError(f'"tool_calls" must be a list, got {raw_calls!r}')
        calls = []
        for raw in raw_calls:
            if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
                raise ValueError(f'each tool call needs a string "name", got {raw!r}')
            arguments = raw.get("arguments", {})
            if not isinstance(arguments, dict | str):
                raise ValueError(f'tool call "arguments" must be an object or a string, got {arguments!r}')
            call_id = raw.get("id")
            calls.append(ToolCall(raw["name"], arguments, None if call_id is None else str(call_id)))
        return ToolCalls(calls, str(obj.get("text", "")), delay=delay, **tokens)
    if "text" in obj:
        return Text(str(obj["text"]), delay=delay, **tokens)
    raise ValueError(f'a reply needs one of "text", "tool_calls" or "error", got {obj!r}')


def load_script(path: str) -> list[Reply]:
    """Read a JSON list of script replies (see :func:`reply_from_json`)."""
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, list):
        raise ValueError(f"{path}: the script must be a JSON list of replies")
    replies = []
    for index, item in enumerate(data):
        try:
            replies.append(reply_from_json(item))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: reply #{index}: {exc}") from exc
    return replies


def _error_body(status: int, message: str) -> dict[str, Any]:
    if status == 429:
        kind = "rate_limit_error"
    elif status >= 500:
        kind = "server_error"
    elif status == 401:
        kind = "authentication_error"
    elif status == 403:
        kind = "permission_error"
    else:
        kind = "invalid_request_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _text_pieces(text: str) -> list[str]:
    # Each piece is one word with its leading whitespace (like real tokens, " world"), so "".join() == text.
    return re.findall(r"\s*\S+|\s+", text)


def _fragments(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


@dataclass(frozen=True)
class _ResolvedCall:
    id: str
    name: str
    arguments: str

    def as_json(self) -> dict[str, Any]:
        function = {"name": self.name, "arguments": self.arguments}
        return {"id": self.id, "type": "function", "function": function}


class _Answer:
    """Everything needed to render one successful reply, both as JSON and as SSE chunks."""

    def __init__(
        self, completion_id: str, request: dict[str, Any], reply: Text | ToolCalls, calls: list[_ResolvedCall]
    ) -> None:
        model = request.get("model")
        self.base: dict[str, Any] = {
            "id": completion_id,
            "created": int(time.time()),
            "model": model if isinstance(model, str) else MODEL_ID,
            "system_fingerprint": None,
        }
        self.text = reply.text
        self.calls = calls
        self.finish_reason = "tool_calls" if calls else "stop"
        prompt = reply.prompt_tokens if reply.prompt_tokens is not None else prompt_token_count(request)
        completion = (
            reply.completion_tokens if reply.completion_tokens is not None else completion_token_count(reply)
        )
        self.usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def completion(self) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            # OpenAI sends null content for a tool-call turn without text.
            "content": None if self.calls and not self.text else self.text,
            "refusal": None,
        }
        if self.calls:
            message["tool_calls"] = [c.as_json() for c in self.calls]
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": self.finish_reason}
        return {**self.base, "object": "chat.completion", "choices": [choice], "usage": self.usage}

    def chunks(self, include_usage: bool) -> Iterator[dict[str, Any]]:
        # With include_usage, OpenAI puts "usage": null on every chunk but the last; mimic that shape.
        extra: dict[str, Any] = {"usage": None} if include_usage else {}

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return {**self.base, "object": "chat.completion.chunk", "choices": [choice], **extra}

        yield chunk({"role": "assistant", "content": ""})
        for piece in _text_pieces(self.text):
            yield chunk({"content": piece})
        for index, call in enumerate(self.calls):
            head = {
                "index": index,
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            yield chunk({"tool_calls": [head]})
            for fragment in _fragments(call.arguments, _ARGUMENT_FRAGMENT_CHARS):
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
        yield chunk({}, self.finish_reason)
        if include_usage:
            yield {**self.base, "object": "chat.completion.chunk", "choices": [], "usage": self.usage}


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], owner: ScriptedOpenAIServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback to stderr; a test should see the problem in srv.errors instead.
        exc = sys.exc_info()[1]
        if isinstance(exc, BrokenPipeError | ConnectionResetError):
            return
        self.owner._record_error(f"internal error while answering {client_address}: {exc!r}")


class _Handler(BaseHTTPRequestHandler):
    server_version = "ScriptedOpenAIServer/1"
    # HTTP/1.0 closes every connection after its response: SSE needs no chunked encoding and no idle
    # keep-alive thread outlives stop().
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def owner(self) -> ScriptedOpenAIServer:
        return cast(_HTTPServer, self.server).owner

    def _path(self) -> str:
        return self.path.split("?", 1)[0].rstrip("/")

    def do_GET(self) -> None:
        if self._path() == _MODELS_PATH:
            model = {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "massgen-tracing"}
            self._send_json(200, {"object": "list", "data": [model]})
        else:
            self._reject(404, f"Unknown path: GET {self.path}")

    def do_POST(self) -> None:
        # Read the whole body even for requests we reject: closing a socket with unread data sends a
        # reset, and the client would see a connection error instead of our answer.
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self._reject(400, "Invalid Content-Length header")
            return
        raw = self.rfile.read(length) if length else b""
        if self._path() != _CHAT_PATH:
            self._reject(404, f"Unknown path: POST {self.path} (this server only implements {_CHAT_PATH})")
            return
        try:
            body = json.loads(raw)
        except ValueError as exc:
            self._reject(400, f"Request body is not valid JSON: {exc}")
            return
        if not isinstance(body, dict):
            self._reject(400, f"Request body must be a JSON object, got {type(body).__name__}")
            return
        if not isinstance(body.get("messages"), list):
            self._reject(400, 'Request body needs a "messages" list')
            return
        self._answer(body)

    def _answer(self, body: dict[str, Any]) -> None:
        owner = self.owner
        reply = owner._reply_for(body)
        if reply.delay and owner._stopping.wait(reply.delay):
            return
        if isinstance(reply, Error):
            headers = {}
            if reply.retry_after is not None:
                seconds = reply.retry_after
                headers = {"retry-after": f"{seconds:g}", "retry-after-ms": f"{seconds * 1000:g}"}
            self._send_json(reply.status, _error_body(reply.status, reply.message), headers)
            return
        answer = _Answer(owner._next_completion_id(), body, reply, owner._resolve_calls(reply))
        if body.get("stream") is True:
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            self._send_stream(answer.chunks(include_usage))
        else:
            self._send_json(200, answer.completion())

    def _reject(self, status: int, message: str) -> None:
        self.owner._record_error(f"{status}: {message}")
        self._send_json(status, _error_body(status, message))

    def _send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_stream(self, chunks: Iterator[dict[str, Any]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        stopping = self.owner._stopping
        delay = self.owner.chunk_delay
        frames = (f"data: {json.dumps(c)}\n\n".encode() for c in chunks)
        for position, frame in enumerate(itertools.chain(frames, [b"data: [DONE]\n\n"])):
            if position and delay and stopping.wait(delay):
                return
            self.wfile.write(frame)
            self.wfile.flush()


class ScriptedOpenAIServer:
    """An OpenAI-compatible server on ``host`` answering ``/v1/chat/completions`` from a script.

    ``responder`` is either a sequence of replies, consumed one per chat request (when it runs out the
    server answers HTTP 500 and records the problem in :attr:`errors`), or a callable that receives
    each request's JSON body and returns the reply. A ``str`` reply is shorthand for ``Text(str)``.
    ``chunk_delay`` seconds are slept between SSE chunks of streamed answers.
    """

    def __init__(
        self,
        responder: Responder,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        chunk_delay: float = 0.0,
    ) -> None:
        if isinstance(responder, str):
            raise TypeError("responder must be a list of replies or a callable, not a str; wrap it: [text]")
        _check_delay(chunk_delay)
        self._script: list[Reply] | None = None
        self._respond: Callable[[dict[str, Any]], Reply | str] | None = None
        if callable(responder):
            self._respond = responder
        else:
            self._script = [_as_reply(r) for r in responder]
        self.host = host
        self.chunk_delay = chunk_delay
        self._requested_port = port
        self._lock = threading.Lock()
        self._requests: list[dict[str, Any]] = []
        self._errors: list[str] = []
        self._script_position = 0
        self._call_counter = 0
        self._completion_counter = 0
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> ScriptedOpenAIServer:
        """Bind and serve in a daemon thread; returns ``self``."""
        if self._httpd is not None:
            raise RuntimeError("ScriptedOpenAIServer is already running")
        self._stopping.clear()
        httpd = _HTTPServer((self.host, self._requested_port), self)
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL},
            name=f"ScriptedOpenAIServer:{httpd.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port; in-flight delays and streams are cut short. Idempotent."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=1.0)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> ScriptedOpenAIServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what tests look at ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("ScriptedOpenAIServer is not running; call start() or use it in a with block")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/v1``, what OpenAI-compatible clients take as their base URL."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """A snapshot of the JSON bodies of all chat-completion requests received, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def errors(self) -> list[str]:
        """A snapshot of problems the server hit: script exhausted, responder failures, rejected requests."""
        with self._lock:
            return list(self._errors)

    # -- used by the request handler -------------------------------------------------------------------

    def _record_error(self, message: str) -> None:
        with self._lock:
            self._errors.append(message)

    def _reply_for(self, request: dict[str, Any]) -> Reply:
        # Recording the request and taking its scripted reply under one lock keeps requests[i] paired
        # with script[i] even when clients send concurrently.
        with self._lock:
            self._requests.append(request)
            number = len(self._requests)
            if self._script is not None:
                if self._script_position < len(self._script):
                    self._script_position += 1
                    return self._script[self._script_position - 1]
                problem = (
                    f"ScriptedOpenAIServer script exhausted: all {len(self._script)} scripted replies were "
                    f"used, so chat request #{number} has no reply"
                )
                self._errors.append(problem)
                return Error(500, problem)
        assert self._respond is not None
        try:
            return _as_reply(self._respond(request))
        except Exception as exc:  # noqa: BLE001 - any responder bug must become a visible 500, not a hang
            problem = f"ScriptedOpenAIServer responder failed on chat request #{number}: {exc!r}"
            self._record_error(problem)
            return Error(500, problem)

    def _next_completion_id(self) -> str:
        with self._lock:
            self._completion_counter += 1
            return f"chatcmpl-{self._completion_counter}"

    def _resolve_calls(self, reply: Text | ToolCalls) -> list[_ResolvedCall]:
        if isinstance(reply, Text):
            return []
        resolved = []
        with self._lock:
            for call in reply.calls:
                call_id = call.id
                if call_id is None:
                    self._call_counter += 1
                    call_id = f"call_{self._call_counter}"
                resolved.append(_ResolvedCall(call_id, call.name, _arguments_json(call)))
        return resolved


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until interrupted (Ctrl-C or SIGTERM)."""
    parser = argparse.ArgumentParser(
        prog="python -m massgen_tracing.testing.openai_server",
        description="A scripted OpenAI-compatible chat-completions server for offline demos and tests.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port (default: 8765)")
    parser.add_argument(
        "--script",
        metavar="FILE.json",
        help='JSON list of replies: {"text": ...}, {"tool_calls": [{"name": ..., "arguments": {...}}]}, '
        '{"error": 500, "message": ...}; each may add "delay". Without it every request gets a text '
        "reply quoting the last user message.",
    )
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between streamed chunks")
    args = parser.parse_args(argv)

    responder: Responder = echo_responder
    if args.script:
        try:
            responder = load_script(args.script)
        except (OSError, ValueError) as exc:
            print(f"cannot load script: {exc}", file=sys.stderr)
            return 2
    server = ScriptedOpenAIServer(responder, host=args.host, port=args.port, chunk_delay=args.chunk_delay)
    try:
        server.start()
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1

    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    if threading.current_thread() is threading.main_thread():
        # Handle SIGINT ourselves too: a shell starts background jobs with SIGINT ignored, and Python then
        # never raises KeyboardInterrupt, so the server could not be interrupted.
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
    print(f"serving on {server.base_url}", file=sys.stderr, flush=True)
    try:
        # A timed wait keeps Ctrl-C responsive on every platform.
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
