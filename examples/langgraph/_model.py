"""The chat model the examples use: a scripted offline model by default, a real OpenAI-compatible server
when OPENAI_BASE_URL is set (OPENAI_MODEL names the model, OPENAI_API_KEY the key)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage

from massgen_tracing.testing.langchain_models import ScriptedChatModel


def example_model(
    script: Sequence[Any] = (),
    *,
    responder: Callable[[list[BaseMessage]], Any] | None = None,
    delay: float = 0.3,
) -> BaseChatModel:
    """`script` (replies in order) or `responder` (reply per request) drive the scripted model;
    a real server ignores both."""
    base_url = os.environ.get("OPENAI_BASE_URL")
    if base_url:
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(
            model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"),
            base_url=base_url,
            api_key=os.environ.get("OPENAI_API_KEY", "not-needed"),
            streaming=True,
            stream_usage=True,
        )
    # A short pause per reply and per chunk so the live view has something to show.
    return ScriptedChatModel(replies=list(script), responder=responder, delay=delay, chunk_delay=0.02,
                             streaming=True)
