"""An example smolagents agent for `massgen_tracing.massgen.smolagents_tool`: it looks a fact up with a
tool, then gives its final answer. Works against any OpenAI-compatible endpoint.
"""

from __future__ import annotations

from rich.console import Console

from smolagents import AgentLogger, LogLevel, OpenAIServerModel, ToolCallingAgent, tool

FACTS = {
    "tracing": "OpenTelemetry traces connect MassGen's coordination to every framework step.",
    "massgen": "MassGen agents vote for the best answer before one of them presents it.",
}


@tool
def lookup_fact(topic: str) -> str:
    """Look up a short fact about a topic.

    Args:
        topic: What to look up.
    """
    hits = [text for key, text in FACTS.items() if key in topic.lower()]
    return " ".join(hits) or "No fact found."


def make_agent(base_url: str | None = None, model: str = "gpt-4o-mini", max_steps: int = 4) -> ToolCallingAgent:
    """A fresh agent per tool call (smolagents agents keep memory). The API key comes from OPENAI_API_KEY."""
    return ToolCallingAgent(
        tools=[lookup_fact],
        model=OpenAIServerModel(model_id=model, api_base=base_url),
        max_steps=max_steps,
        name="fact_checker",
        stream_outputs=True,  # token deltas in MassGen's display
        # smolagents prints its steps (and, when streaming, a live panel at any verbosity) to stdout,
        # which is where MassGen's display writes too: keep it quiet, the steps are shown as spans.
        logger=AgentLogger(level=LogLevel.OFF, console=Console(quiet=True)),
    )
