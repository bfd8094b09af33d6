"""The model the examples use: a scripted offline model by default, a real OpenAI-compatible server when
OPENAI_BASE_URL is set (OPENAI_MODEL names the model, OPENAI_API_KEY the key)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from massgen_tracing.testing.smolagents_models import Reply, ScriptedModel
from smolagents import Model, OpenAIServerModel


def example_model(script: Sequence[Reply | str], *, delay: float = 0.3) -> Model:
    """`script` is what the scripted model answers, in order; a real server ignores it."""
    base_url = os.environ.get("OPENAI_BASE_URL")
    if base_url:
        return OpenAIServerModel(
            model_id=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"),
            api_base=base_url,
            api_key=os.environ.get("OPENAI_API_KEY", "not-needed"),
        )
    # A short pause per reply so the live view has something to show.
    return ScriptedModel(script, delay=delay, chunk_delay=0.02)
