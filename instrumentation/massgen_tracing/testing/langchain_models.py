"""A scripted, deterministic LangChain chat model for tests, examples and benchmarks (no network).
It replays text and tool-call turns, streams them in chunks and reports token usage like a real provider.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, TypeAlias, cast

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ToolCall,
    ToolCallChunk,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field, PrivateAttr

__all__ = ["Reply", "Responder", "ScriptedChatModel", "count_words", "tool_call"]

#: One scripted assistant turn: text, an `AIMessage`, or a list of tool calls (see `tool_call`).
Reply: TypeAlias = "str | AIMessage | list[ToolCall]"
#: Computes the reply from the request messages: for concurrent callers, whose order is not fixed.
Responder: TypeAlias = Callable[[list[BaseMessage]], "str | AIMessage | list[ToolCall]"]

PROVIDER = "scripted"


def tool_call(name: str, args: dict[str, Any] | None = None, id: str | None = None) -> ToolCall:
    """A tool call for a scripted reply; the id defaults to `call_<name>` so runs are reproducible."""
    return ToolCall(name=name, args=dict(args or {}), id=id or f"call_{name}", type="tool_call")


def count_words(messages: Sequence[BaseMessage]) -> int:
    """The prompt-token rule: whitespace-separated words of every message's text content."""
    n = 0
    for m in messages:
        content = m.content
        if isinstance(content, str):
            n += len(content.split())
        else:
            for part in content:
                text = part if isinstance(part, str) else part.get("text", "")
                n += len(str(text).split())
    return n


def _split_text(text: str, words_per_chunk: int) -> list[str]:
    """Split keeping whitespace attached, so the chunks concatenate back to `text` exactly."""
    pieces: list[str] = []
    current: list[str] = []
    words = 0
    token = ""
    for ch in text:
        if ch.isspace() and token and not token[-1].isspace():
            current.append(token)
            token = ""
            words += 1
            if words >= words_per_chunk:
                pieces.append("".join(current))
                current, words = [], 0
        token += ch
    if token:
        current.append(token)
    if current:
        pieces.append("".join(current))
    return pieces or [""]


class ScriptedChatModel(BaseChatModel):
    """A real `BaseChatModel` that answers from a script.

    `replies` are consumed in order, one per call (thread-safe); with `responder` set the reply is
    computed from the request instead (use it when parallel branches call the model concurrently).
    When the script runs out the model answers `default_reply`. Token usage is deterministic:
    prompt tokens = words in the request (`count_words`), completion tokens = words in the reply text
    plus one per tool call. `streaming=True` (or a streaming caller, e.g. LangGraph's
    `stream_mode="messages"`) streams `words_per_chunk` words per chunk, usage on the last chunk.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    replies: list[Any] = Field(default_factory=list)
    responder: Callable[[list[BaseMessage]], Any] | None = None
    default_reply: str = "Done."
    model_name: str = "scripted-model"
    streaming: bool = False
    words_per_chunk: int = 1
    delay: float = 0.0
    """Seconds to wait before answering (each call)."""
    chunk_delay: float = 0.0
    """Seconds to wait before each streamed chunk."""
    temperature: float | None = None

    _index: int = PrivateAttr(default=0)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _calls: list[list[BaseMessage]] = PrivateAttr(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = PROVIDER
        params["ls_model_name"] = self.model_name
        return params

    def bind_tools(
        self,
        tools: Sequence[Any],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Accept tools like a real provider (their schemas show in the invocation parameters)."""
        formatted = [convert_to_openai_tool(t) for t in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=formatted, **kwargs)

    @property
    def calls(self) -> list[list[BaseMessage]]:
        """The request messages of every call so far, in call order."""
        return self._calls

    def reset(self) -> None:
        """Start the script again from its first reply."""
        with self._lock:
            self._index = 0
            self._calls.clear()

    # --- the script --------------------------------------------------------------------------------

    def _next_message(self, messages: list[BaseMessage]) -> AIMessage:
        with self._lock:
            self._calls.append(list(messages))
            if self.responder is None:
                if self._index < len(self.replies):
                    reply = self.replies[self._index]
                    self._index += 1
                else:
                    reply = self.default_reply
        if self.responder is not None:
            reply = self.responder(list(messages))
        message = self._to_message(reply)
        usage = self._usage(messages, message)
        finish = "tool_calls" if message.tool_calls else "stop"
        return AIMessage(
            content=message.content,
            tool_calls=message.tool_calls,
            usage_metadata=usage,
            response_metadata={
                "model_name": self.model_name,
                "model_provider": PROVIDER,
                "finish_reason": finish,
                "token_usage": {
                    "prompt_tokens": usage["input_tokens"],
                    "completion_tokens": usage["output_tokens"],
                    "total_tokens": usage["total_tokens"],
                },
            },
        )

    @staticmethod
    def _to_message(reply: Any) -> AIMessage:
        if isinstance(reply, AIMessage):
            return reply
        if isinstance(reply, str):
            return AIMessage(content=reply)
        if isinstance(reply, list):
            return AIMessage(content="", tool_calls=list(reply))
        raise TypeError(f"unsupported scripted reply {reply!r}: use str, AIMessage or a list of tool_call()")

    @staticmethod
    def _usage(messages: list[BaseMessage], message: AIMessage) -> UsageMetadata:
        prompt = count_words(messages)
        completion = count_words([message]) + len(message.tool_calls)
        # A cast, not the TypedDict's constructor: langchain-core >= 1.8 imports `NotRequired` from
        # `typing`, which mypy (checking for Python 3.10) does not know, so every key looks required.
        return cast("UsageMetadata", {"input_tokens": prompt, "output_tokens": completion,
                                      "total_tokens": prompt + completion})

    def _result(self, message: AIMessage) -> ChatResult:
        meta = message.response_metadata
        return ChatResult(
            generations=[ChatGeneration(message=message, generation_info={"finish_reason": meta["finish_reason"]})],
            llm_output={"token_usage": meta["token_usage"], "model_name": self.model_name},
        )

    def _chunks(self, message: AIMessage) -> Iterator[ChatGenerationChunk]:
        text = message.content if isinstance(message.content, str) else ""
        pieces = _split_text(text, max(1, self.words_per_chunk)) if text else []
        for piece in pieces:
            yield ChatGenerationChunk(message=AIMessageChunk(content=piece))
        for i, call in enumerate(message.tool_calls):
            chunk = ToolCallChunk(name=call["name"], args=json.dumps(call["args"]), id=call["id"], index=i,
                                  type="tool_call_chunk")
            yield ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=[chunk]))
        meta = message.response_metadata
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata=message.usage_metadata,
                response_metadata={k: v for k, v in meta.items() if k != "token_usage"},
                chunk_position="last",
            ),
            generation_info={"finish_reason": meta["finish_reason"]},
        )

    # --- BaseChatModel -----------------------------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.delay:
            time.sleep(self.delay)
        return self._result(self._next_message(messages))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.delay:
            await asyncio.sleep(self.delay)
        return self._result(self._next_message(messages))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        # BaseChatModel reports each yielded chunk to the callbacks (on_llm_new_token) itself.
        if self.delay:
            time.sleep(self.delay)
        for chunk in self._chunks(self._next_message(messages)):
            if self.chunk_delay:
                time.sleep(self.chunk_delay)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        if self.delay:
            await asyncio.sleep(self.delay)
        for chunk in self._chunks(self._next_message(messages)):
            if self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            yield chunk
