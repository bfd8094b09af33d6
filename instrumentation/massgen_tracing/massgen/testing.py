"""A scripted model for MassGen runs with framework tools, offline: one responder plays MassGen's
agents (call the framework tool, answer, vote, present) and the frameworks' own model calls.

`python -m massgen_tracing.massgen.testing --port 8000` serves it for the example configs.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from massgen_tracing.testing.openai_server import Reply, ScriptedOpenAIServer, Text, ToolCall, ToolCalls

# MassGen offers these to every agent with custom tools; they are not framework tools.
_MASSGEN_BACKGROUND_TOOLS = frozenset({
    "custom_tool__start_background_tool", "custom_tool__get_background_tool_status",
    "custom_tool__get_background_tool_result", "custom_tool__wait_for_background_tool",
    "custom_tool__cancel_background_tool", "custom_tool__list_background_tools",
})
_NO_ANSWERS = "(no answers available yet)"
_ANSWER_LABEL = re.compile(r"<(agent\d+)\.\d+>")
_ORIGINAL = re.compile(r"<ORIGINAL MESSAGE>\s*(.*?)\s*<END OF ORIGINAL MESSAGE>", re.S)
_OWN_ANSWER = re.compile(r'\(YOUR ANSWER\): "(.*?)"\n', re.S)


@dataclass
class Exchange:
    """One chat request the responder answered: who asked (`massgen`, `langgraph`, `smolagents`,
    `model`), when it arrived (`time.time()`), and the reply's tool calls or text."""

    caller: str
    received: float
    tools: list[str]
    reply: str


@dataclass
class MassGenResponder:
    """Callable responder for `ScriptedOpenAIServer`.

    Requests are told apart by the tools they offer: MassGen's carry `new_answer`; smolagents offers
    `final_answer`; any other request with tools is a LangGraph model call. `framework_delay` seconds
    are waited before each framework model reply, so a run lasts long enough to watch.
    """

    framework_delay: float = 0.0
    log: list[Exchange] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, request: dict[str, Any]) -> Reply:
        tools = [t.get("function", {}).get("name", "") for t in request.get("tools") or []]
        messages = [m for m in request.get("messages") or [] if isinstance(m, dict)]
        received = time.time()
        if "new_answer" in tools:
            caller, reply = "massgen", self._massgen(tools, messages)
        elif "final_answer" in tools:
            caller, reply = "smolagents", self._smolagents(request, messages)
        elif tools:
            caller, reply = "langgraph", self._langgraph(request, messages)
        else:
            caller, reply = "model", Text("Plain answer.")
        with self._lock:
            self.log.append(Exchange(caller, received, tools, _describe(reply)))
        return reply

    def calls(self, caller: str) -> list[Exchange]:
        with self._lock:
            return [e for e in self.log if e.caller == caller]

    # --- MassGen's protocol ----------------------------------------------------------------------------
    def _massgen(self, tools: list[str], messages: list[dict[str, Any]]) -> Reply:
        user = _text_of(next((m for m in messages if m.get("role") == "user"), {}))
        question = _ORIGINAL.search(user)
        task = question.group(1) if question else user
        if "vote" not in tools:  # the winner's final presentation
            own = _OWN_ANSWER.search(user)
            return Text(f"Final answer. {own.group(1) if own else task}")
        if _NO_ANSWERS in user:
            framework_tools = [t for t in tools if t.startswith("custom_tool__") and t not in _MASSGEN_BACKGROUND_TOOLS]
            result = _last_tool_result(messages)
            if result is None and framework_tools:
                return ToolCalls([ToolCall(framework_tools[0], {"task": task})])
            return ToolCalls([ToolCall("new_answer", {"content": f"Answer: {result or task}"})])
        labels = _ANSWER_LABEL.findall(user)
        return ToolCalls([ToolCall("vote", {"agent_id": labels[0] if labels else "agent1",
                                            "reason": "It used the framework's result."})])

    # --- the frameworks' model calls -------------------------------------------------------------------
    def _langgraph(self, request: dict[str, Any], messages: list[dict[str, Any]]) -> Reply:
        if any(m.get("role") == "tool" for m in messages):
            return Text(f"The notes say: {_last_tool_result(messages)}", delay=self.framework_delay)
        return ToolCalls([_call_first_tool(request, _first_user_text(messages))], delay=self.framework_delay)

    def _smolagents(self, request: dict[str, Any], messages: list[dict[str, Any]]) -> Reply:
        # smolagents sends tool results back as user messages starting with "Observation:" (its system
        # prompt mentions observations too, so only user messages count).
        observed = [m for m in messages if m.get("role") == "tool"
                    or (m.get("role") == "user" and _text_of(m).lstrip().startswith("Observation:"))]
        if observed:
            fact = _text_of(observed[-1]).split("Observation:", 1)[-1].strip()
            return ToolCalls([ToolCall("final_answer", {"answer": f"Checked: {fact}"})], delay=self.framework_delay)
        return ToolCalls([_call_first_tool(request, _first_user_text(messages), skip="final_answer")],
                         delay=self.framework_delay)


def _text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _first_user_text(messages: list[dict[str, Any]]) -> str:
    text = next((_text_of(m) for m in messages if m.get("role") == "user"), "")
    return text.removeprefix("New task:").strip()  # smolagents' task preamble


def _last_tool_result(messages: list[dict[str, Any]]) -> str | None:
    results = [_text_of(m) for m in messages if m.get("role") == "tool"]
    return results[-1] if results else None


def _call_first_tool(request: dict[str, Any], text: str, skip: str = "") -> ToolCall:
    """A call to the first offered tool, every required string parameter filled with `text`."""
    for tool in request.get("tools") or []:
        fn = tool.get("function", {})
        if fn.get("name") == skip:
            continue
        params = fn.get("parameters") or {}
        props = params.get("properties") or {}
        required = params.get("required") or list(props)
        args = {name: (text[:200] or "topic") if props.get(name, {}).get("type", "string") == "string" else 1
                for name in required}
        return ToolCall(fn["name"], args)
    raise ValueError("the request offers no tool to call")


def _describe(reply: Reply) -> str:
    if isinstance(reply, ToolCalls):
        return ", ".join(f"{c.name}({json.dumps(c.arguments)})" for c in reply.calls)
    if isinstance(reply, Text):
        return reply.text
    return repr(reply)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the scripted model until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m massgen_tracing.massgen.testing",
                                     description="An offline OpenAI-compatible endpoint that plays MassGen's "
                                                 "agents and the frameworks' model calls.")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--framework-delay", type=float, default=0.5,
                        help="seconds before each framework model reply, to watch the steps arrive")
    args = parser.parse_args(argv)
    stop = threading.Event()
    handler: Callable[[int, Any], None] = lambda _sig, _frame: stop.set()  # noqa: E731
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    with ScriptedOpenAIServer(MassGenResponder(framework_delay=args.framework_delay), port=args.port) as server:
        print(f"scripted endpoint at {server.base_url} (Ctrl-C to stop)", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
