"""A scripted smolagents `Model` for tests, examples and benchmarks: no network, no weights, no keys.

It takes the same replies as `ScriptedOpenAIServer` (`Text`, `ToolCalls`, `Error`, or a bare str).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Generator, Iterable, Sequence
from typing import Any

from smolagents.models import (
    ChatMessage,
    ChatMessageStreamDelta,
    ChatMessageToolCall,
    ChatMessageToolCallFunction,
    ChatMessageToolCallStreamDelta,
    MessageRole,
    Model,
)
from smolagents.monitoring import TokenUsage

from massgen_tracing.testing.openai_server import (
    Error,
    Reply,
    Text,
    ToolCall,
    ToolCalls,
    completion_token_count,
)

__all__ = [
    "Error",
    "Reply",
    "ScriptExhaustedError",
    "ScriptedModel",
    "ScriptedModelError",
    "Text",
    "ToolCall",
    "ToolCalls",
    "code",
    "final_answer",
    "tool_call",
]


class ScriptExhaustedError(RuntimeError):
    """The model was asked for more replies than its script holds."""


class ScriptedModelError(RuntimeError):
    """A scripted `Error(status, message)` reply, raised the way a failing API call would be."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


def tool_call(name: str, /, **arguments: Any) -> ToolCalls:
    """One tool call as a reply: `tool_call("get_weather", city="Paris")`."""
    return ToolCalls([ToolCall(name, arguments)])


def final_answer(answer: Any) -> ToolCalls:
    """The ToolCallingAgent reply that ends a run."""
    return tool_call("final_answer", answer=answer)


def code(source: str, thought: str = "I will run this code.") -> Text:
    """A CodeAgent reply: a thought and a code blob in smolagents' default `<code>` tags."""
    return Text(f"Thought: {thought}\n<code>\n{source.strip()}\n</code>")


def _words(text: str) -> int:
    return len(text.split())


def _message_text(message: ChatMessage | dict[str, Any]) -> str:
    content = message.get("content") if isinstance(message, dict) else message.content
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _arguments_json(call: ToolCall) -> str:
    return call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)


class ScriptedModel(Model):  # type: ignore[misc]  # smolagents ships no type hints
    """Answers each `generate`/`generate_stream` call with the next scripted reply.

    Token usage follows `ScriptedOpenAIServer`'s rule unless a reply sets it: prompt tokens are the words
    in the request messages' text, completion tokens the words of the reply text plus each tool call's
    name and arguments JSON. `delay` seconds are slept before every reply (a reply's own `delay` adds to
    it); streamed replies sleep `chunk_delay` between chunks. Streams yield one delta per word, one per
    tool call, and a last delta carrying the token usage, like `OpenAIServerModel`.
    """

    def __init__(
        self,
        replies: Iterable[Reply | str],
        *,
        model_id: str = "scripted",
        delay: float = 0.0,
        chunk_delay: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(model_id=model_id, **kwargs)
        self.replies: list[Reply] = [Text(r) if isinstance(r, str) else r for r in replies]
        self.delay = delay
        self.chunk_delay = chunk_delay
        self.calls = 0
        self._lock = threading.Lock()
        self._call_ids = 0

    def _next(self, messages: Sequence[ChatMessage | dict[str, Any]]) -> tuple[Text | ToolCalls, TokenUsage]:
        with self._lock:
            if self.calls >= len(self.replies):
                raise ScriptExhaustedError(
                    f"ScriptedModel script exhausted: all {len(self.replies)} replies were used"
                )
            reply = self.replies[self.calls]
            self.calls += 1
        pause = self.delay + reply.delay
        if pause:
            time.sleep(pause)
        if isinstance(reply, Error):
            raise ScriptedModelError(reply.status, reply.message)
        prompt = reply.prompt_tokens
        if prompt is None:
            prompt = sum(_words(_message_text(m)) for m in messages)
        completion = reply.completion_tokens
        if completion is None:
            completion = completion_token_count(reply)
        return reply, TokenUsage(input_tokens=prompt, output_tokens=completion)

    def _call_id(self, call: ToolCall) -> str:
        if call.id is not None:
            return call.id
        with self._lock:
            self._call_ids += 1
            return f"call_{self._call_ids}"

    def generate(
        self,
        messages: list[ChatMessage],
        stop_sequences: list[str] | None = None,
        response_format: dict[str, str] | None = None,
        tools_to_call_from: list[Any] | None = None,
        **kwargs: Any,
    ) -> ChatMessage:
        reply, usage = self._next(messages)
        tool_calls = None
        if isinstance(reply, ToolCalls):
            tool_calls = [
                ChatMessageToolCall(
                    function=ChatMessageToolCallFunction(name=c.name, arguments=_arguments_json(c)),
                    id=self._call_id(c),
                    type="function",
                )
                for c in reply.calls
            ]
        return ChatMessage(role=MessageRole.ASSISTANT, content=reply.text, tool_calls=tool_calls,
                           token_usage=usage)

    def generate_stream(
        self,
        messages: list[ChatMessage],
        stop_sequences: list[str] | None = None,
        response_format: dict[str, str] | None = None,
        tools_to_call_from: list[Any] | None = None,
        **kwargs: Any,
    ) -> Generator[ChatMessageStreamDelta, None, None]:
        reply, usage = self._next(messages)
        first = True
        # Each piece is one word with its leading whitespace, so "".join(pieces) == text.
        for piece in re.findall(r"\s*\S+|\s+", reply.text):
            if not first and self.chunk_delay:
                time.sleep(self.chunk_delay)
            first = False
            yield ChatMessageStreamDelta(content=piece)
        if isinstance(reply, ToolCalls):
            for index, c in enumerate(reply.calls):
                if not first and self.chunk_delay:
                    time.sleep(self.chunk_delay)
                first = False
                function = ChatMessageToolCallFunction(name=c.name, arguments=_arguments_json(c))
                yield ChatMessageStreamDelta(tool_calls=[
                    ChatMessageToolCallStreamDelta(index=index, id=self._call_id(c), type="function",
                                                   function=function)
                ])
        yield ChatMessageStreamDelta(content="", token_usage=usage)
