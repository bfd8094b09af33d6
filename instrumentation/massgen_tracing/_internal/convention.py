"""The step convention: every attribute and event name this project writes, declared once.

Instrumentors import names from here; the tables in `docs/convention.md` are generated from this
registry (`python -m massgen_tracing._internal.docgen`, checked by a test).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

Framework = Literal["langgraph", "smolagents"]
StepKind = Literal["run", "node", "planning", "action", "llm", "tool", "final_answer"]

FRAMEWORKS: Final[tuple[str, ...]] = ("langgraph", "smolagents")
STEP_KINDS: Final[tuple[str, ...]] = ("run", "node", "planning", "action", "llm", "tool", "final_answer")
ALL: Final[tuple[str, ...]] = STEP_KINDS


@dataclass(frozen=True)
class Attr:
    """One span attribute of the convention."""

    name: str
    type: str  # OTel attribute type: string, int, double, boolean, string[]
    when: Literal["start", "end", "start or end"]
    kinds: tuple[str, ...]
    doc: str


@dataclass(frozen=True)
class EventName:
    """One span event of the convention, with the attributes it carries."""

    name: str
    kinds: tuple[str, ...]
    attributes: tuple[str, ...]
    doc: str


ATTRIBUTES: list[Attr] = []
EVENTS: list[EventName] = []


def _attr(name: str, type_: str, when: Literal["start", "end", "start or end"], kinds: tuple[str, ...],
          doc: str) -> str:
    ATTRIBUTES.append(Attr(name, type_, when, kinds, doc))
    return name


def _event(name: str, kinds: tuple[str, ...], attributes: tuple[str, ...], doc: str) -> str:
    EVENTS.append(EventName(name, kinds, attributes, doc))
    return name


# --- identity of a step: all present when the span starts ------------------------------------------
FRAMEWORK = _attr("massgen.framework", "string", "start", ALL, "`langgraph` or `smolagents`.")
STEP_KIND = _attr("massgen.step.kind", "string", "start", ALL,
                  "`run`, `node`, `planning`, `action`, `llm`, `tool` or `final_answer`.")
STEP_NAME = _attr("massgen.step.name", "string", "start", ALL,
                  "Graph or agent name (run), node name, model name (llm), tool name (tool/final_answer); "
                  "`planning`/`action` steps use the agent name.")
STEP_INDEX = _attr("massgen.step.index", "int", "start", ("node", "planning", "action"),
                   "LangGraph super-step (`langgraph_step`) or smolagents step number (from 1).")
STEP_MAX = _attr("massgen.step.max", "int", "start", ("run", "planning", "action"),
                 "The step budget where the framework has one (smolagents `max_steps`, LangGraph "
                 "`recursion_limit` when set explicitly; LangGraph's default is no budget).")
RUN_INPUT = _attr("massgen.run.task", "string", "start", ("run",),
                  "The task or input of a run, subject to content capture and redaction. A smolagents "
                  "managed agent's run: the task its manager gave it (`input.value` has it wrapped in "
                  "smolagents' managed-agent prompt).")
NODE_TRIGGERS = _attr("massgen.node.triggers", "string[]", "start", ("node",),
                      "LangGraph channels whose update triggered the node.")
NODE_PATH = _attr("massgen.node.path", "string", "start", ("node",),
                  "LangGraph task path (`langgraph_path`), e.g. `('__pregel_pull', 'agent')`.")
ROUTE = _attr("massgen.route", "string[]", "end", ("node",),
              "Nodes a conditional edge or `Command(goto=...)` sent control to after this node.")
AGENT_ID = _attr("massgen.agent.id", "string", "start", ALL,
                 "The MassGen agent this framework step runs for (set by the MassGen tools).")
INTERRUPTED = _attr("massgen.interrupted", "boolean", "end", ("run", "node", "tool"),
                    "True when the step paused on `interrupt()` (called in it, or in a tool or subgraph below "
                    "it); the status stays OK (waiting for input).")
ABANDONED = _attr("massgen.abandoned", "boolean", "end", ("run", "node", "planning", "action", "llm", "tool"),
                  "True when the consumer stopped iterating a streamed run before this step finished "
                  "(LangGraph: also the nodes, subgraph runs, model and tool calls cancelled as the stream "
                  "closed); the status stays UNSET.")
ATTEMPT = _attr("massgen.attempt", "int", "start", ("node",),
                "Attempt number of the node: 1 for the first try, 2 and up for retries under a `RetryPolicy`.")
CODE = _attr("massgen.code", "string", "start or end", ("action",),
             "CodeAgent: the code the model wrote for this step.")
CODE_ERROR_LINE = _attr("massgen.code.error_line", "string", "end", ("action",),
                        "CodeAgent: source of the statement whose execution (or parsing) failed.")
MODEL_OUTPUT = _attr("massgen.model_output", "string", "end", ("action", "planning"),
                     "The model output of the step, subject to content capture.")
PLAN = _attr("massgen.plan", "string", "end", ("planning",), "The plan text, subject to content capture.")
OBSERVATIONS = _attr("massgen.observations", "string", "end", ("action",),
                     "Observations returned to the model after the step's tool calls or code.")
TOOL_CALLS = _attr("massgen.tool_calls", "string[]", "end", ("action", "llm"),
                   "Names of the tools the model decided to call.")

# --- OpenInference and OpenTelemetry GenAI names, written at start where known ---------------------
OPENINFERENCE_SPAN_KIND = _attr("openinference.span.kind", "string", "start", ALL,
                                "AGENT (run), CHAIN (node, planning, action, final_answer), LLM, TOOL.")
GEN_AI_OPERATION = _attr("gen_ai.operation.name", "string", "start", ("run", "planning", "llm", "tool"),
                         "`invoke_workflow` (LangGraph run), `invoke_agent` (smolagents run), `plan`, "
                         "`chat`, `execute_tool`. Node/action/final_answer have no GenAI operation.")
GEN_AI_AGENT_NAME = _attr("gen_ai.agent.name", "string", "start", ("run", "planning", "action"),
                          "Graph or agent name.")
GEN_AI_TOOL_NAME = _attr("gen_ai.tool.name", "string", "start", ("tool", "final_answer"), "Tool name.")
GEN_AI_REQUEST_MODEL = _attr("gen_ai.request.model", "string", "start", ("llm",), "Requested model name.")
GEN_AI_PROVIDER = _attr("gen_ai.provider.name", "string", "start", ("llm",),
                        "Provider where known (`openai`, ...).")
GEN_AI_INPUT_TOKENS = _attr("gen_ai.usage.input_tokens", "int", "end", ("llm", "run"),
                            "Prompt tokens (on a run: the sum over its model calls, when the framework "
                            "reports it).")
GEN_AI_OUTPUT_TOKENS = _attr("gen_ai.usage.output_tokens", "int", "end", ("llm", "run"),
                             "Completion tokens.")
LLM_TOKEN_PROMPT = _attr("llm.token_count.prompt", "int", "end", ("llm",),
                         "OpenInference prompt tokens. smolagents also writes the three `llm.token_count.*` "
                         "on its run span, as OpenInference's smolagents instrumentor does.")
LLM_TOKEN_COMPLETION = _attr("llm.token_count.completion", "int", "end", ("llm",),
                             "OpenInference completion tokens.")
LLM_TOKEN_TOTAL = _attr("llm.token_count.total", "int", "end", ("llm",), "OpenInference total tokens.")
INPUT_VALUE = _attr("input.value", "string", "start or end", ALL,
                    "Step input (OpenInference), subject to content capture and redaction.")
OUTPUT_VALUE = _attr("output.value", "string", "end", ALL,
                     "Step output (OpenInference), subject to content capture and redaction.")
SESSION_ID = _attr("session.id", "string", "start", ALL,
                   "Conversation id (LangGraph checkpointer `thread_id`), so Phoenix groups a session.")
TOOL_ARGUMENTS = _attr("gen_ai.tool.call.arguments", "string", "start", ("tool", "final_answer"),
                       "JSON of the tool call's arguments, subject to content capture.")
TOOL_RESULT = _attr("gen_ai.tool.call.result", "string", "end", ("tool", "final_answer"),
                    "The tool's result, subject to content capture.")

# --- events: what happens inside a step, at the moment it happens ----------------------------------
DELTA_TEXT = "massgen.delta.text"
DELTA_COUNT = "massgen.delta.count"
# A streamed piece's text when content capture is off (OpenInference's REDACTED_VALUE): a stream of them
# shows as one marker, not one per chunk run together.
HIDDEN_TEXT = "__REDACTED__"  # see `join_streamed`
PROGRESS_CURRENT = "massgen.progress.current"
PROGRESS_TOTAL = "massgen.progress.total"
PROGRESS_MESSAGE = "massgen.progress.message"
RETRY_ATTEMPT = "massgen.retry.attempt"
RETRY_ERROR = "massgen.retry.error"
CUSTOM_DATA = "massgen.custom.data"
LOG_TEXT = "massgen.log.text"
ROUTE_TARGETS = "massgen.route.targets"
TOOL_CALL_NAME = "gen_ai.tool.name"
TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"

EVENT_DELTA = _event("massgen.llm.delta", ("llm",), (DELTA_TEXT, DELTA_COUNT),
                     "Streamed output tokens. Consecutive deltas are coalesced: `massgen.delta.count` "
                     "says how many chunks one event holds (0: text held back for masking, "
                     "see redaction.md).")
EVENT_PROGRESS = _event("massgen.step.progress", ALL, (PROGRESS_CURRENT, PROGRESS_TOTAL, PROGRESS_MESSAGE),
                        "Progress inside a run or step, e.g. smolagents step 3 of 20, or a custom message.")
EVENT_TOOL_DECISION = _event("massgen.tool.decision", ("llm", "action"), (TOOL_CALL_NAME, TOOL_CALL_ARGUMENTS),
                             "The model decided to call a tool (one event per call).")
EVENT_RETRY = _event("massgen.retry", ("node", "llm", "tool"), (RETRY_ATTEMPT, RETRY_ERROR),
                     "An attempt failed and will be retried (LangGraph `RetryPolicy`).")
EVENT_ROUTE = _event("massgen.route", ("node",), (ROUTE_TARGETS,),
                     "A conditional edge chose where the graph goes next.")
EVENT_CUSTOM = _event("massgen.custom", ALL, (CUSTOM_DATA,),
                      "Custom data a node wrote with LangGraph's `get_stream_writer()`, as JSON.")
EVENT_LOG = _event("massgen.log", ("action",), (LOG_TEXT,), "CodeAgent execution logs (print output).")
EVENT_INTERRUPT = _event("massgen.interrupt", ("node", "run", "tool"), (CUSTOM_DATA,),
                         "The graph paused on `interrupt()` and waits for input (not an error).")
EVENT_RESUME = _event("massgen.resume", ("run",), (CUSTOM_DATA,), "The run resumes with `Command(resume=...)`.")
EVENT_EXCEPTION = _event("exception", ALL, ("exception.type", "exception.message", "exception.stacktrace"),
                         "Standard OpenTelemetry exception event; the span status is ERROR when it escapes "
                         "(not for `sys.exit()` / `sys.exit(0)`: those steps end OK, without the event).")

_OI_KIND = {"run": "AGENT", "node": "CHAIN", "planning": "CHAIN", "action": "CHAIN", "llm": "LLM",
            "tool": "TOOL", "final_answer": "CHAIN"}
_OPERATION = {"planning": "plan", "llm": "chat", "tool": "execute_tool"}


def _operation(framework: Any, kind: Any) -> str | None:
    """The GenAI operation of a step kind (runs: a LangGraph graph is a workflow, a smolagents agent an
    agent), or None for kinds the GenAI conventions have no operation for."""
    if kind == "run":
        return "invoke_workflow" if framework == "langgraph" else "invoke_agent"
    return _OPERATION.get(kind)


def step_attributes(
    framework: str,
    kind: str,
    name: str,
    *,
    index: int | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Start-time attributes of a step span: pass them to `start_span(attributes=...)`.

    The live processor sees only what a span carries when it starts, so identity goes in here.
    """
    attrs: dict[str, Any] = {
        FRAMEWORK: framework,
        STEP_KIND: kind,
        STEP_NAME: name,
        OPENINFERENCE_SPAN_KIND: _OI_KIND[kind],
    }
    if index is not None:
        attrs[STEP_INDEX] = index
    if (operation := _operation(framework, kind)) is not None:
        attrs[GEN_AI_OPERATION] = operation
    if kind == "run":
        attrs[GEN_AI_AGENT_NAME] = name
    if kind == "llm":
        attrs[GEN_AI_REQUEST_MODEL] = name
    elif kind in ("tool", "final_answer"):
        attrs[GEN_AI_TOOL_NAME] = name
    if extra:
        attrs.update({k: v for k, v in extra.items() if v is not None})
    return attrs


def span_name(attributes: Mapping[str, Any]) -> str:
    """The span name of a step, from its start attributes: the one naming rule of every instrumentor.

    * a kind with a GenAI operation (run, planning, llm, tool): `{gen_ai.operation.name} {massgen.step.name}`,
      as the GenAI conventions name spans (`invoke_workflow research`, `invoke_agent calc`, `plan calc`,
      `chat gpt-4o`, `execute_tool add`);
    * node: the node name; action: `Step {massgen.step.index}`; final_answer: `final_answer`.

    Names stay low-cardinality: no ids, inputs or counts beyond the (bounded) step index. Attributes
    without a step kind (not a step) give their `massgen.step.name`, or `step`.
    """
    kind = attributes.get(STEP_KIND)
    name = attributes.get(STEP_NAME)
    if kind == "node":
        return str(name)
    if kind == "action":
        index = attributes.get(STEP_INDEX)
        return "Step" if index is None else f"Step {index}"
    if kind == "final_answer":
        return "final_answer"
    operation = attributes.get(GEN_AI_OPERATION) or _operation(attributes.get(FRAMEWORK), kind)
    if operation is None:
        return str(name) if name is not None else "step"
    return str(operation) if name is None else f"{operation} {name}"


def join_streamed(text: str, piece: str) -> str:
    """`text` followed by the streamed `piece`, hidden-content markers kept to one."""
    if piece == HIDDEN_TEXT and text.endswith(HIDDEN_TEXT):
        return text
    return text + piece


def json_text(value: Any, default: Callable[[Any], Any] = str) -> str:
    """`value` as text for a string attribute: a str as it is, anything else as JSON (what json cannot
    encode by itself as `default(obj)`, by default its `str()`, as OpenInference's `safe_json_dumps`
    does). Never raises: a value even that cannot encode — tuple keys, a cycle, an int over Python's
    4300-digit limit, a `str()` that raises — is shown as its `repr()`, or else named by its type. (That
    failure once dropped a whole run's identity, its task being among its start attributes.)"""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=default, ensure_ascii=False)
    except Exception:  # noqa: BLE001  # any failure of the value's own code: the next fallback
        pass
    try:
        return repr(value)
    except Exception:  # noqa: BLE001  # see above
        return f"<{type(value).__name__} that cannot be shown>"


def markdown_reference() -> str:
    """The handbook's convention reference, generated from this registry."""
    lines = [
        "## Attributes",
        "",
        "| name | type | when set | step kinds | meaning |",
        "|---|---|---|---|---|",
    ]
    for a in ATTRIBUTES:
        kinds = "all" if a.kinds == ALL else ", ".join(a.kinds)
        lines.append(f"| `{a.name}` | {a.type} | {a.when} | {kinds} | {a.doc} |")
    lines += ["", "## Events", "", "| name | step kinds | attributes | meaning |", "|---|---|---|---|"]
    for e in EVENTS:
        kinds = "all" if e.kinds == ALL else ", ".join(e.kinds)
        attrs = ", ".join(f"`{a}`" for a in e.attributes)
        lines.append(f"| `{e.name}` | {kinds} | {attrs} | {e.doc} |")
    lines += ["", "## Defaults per step kind", "", "| kind | openinference.span.kind | gen_ai.operation.name |",
              "|---|---|---|"]
    for k in STEP_KINDS:
        op = _OPERATION.get(k, "invoke_workflow / invoke_agent" if k == "run" else "—")
        lines.append(f"| `{k}` | {_OI_KIND[k]} | {op} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_reference(), end="")


def clean_exit(error: BaseException) -> bool:
    """`sys.exit()` or `sys.exit(0)` escaping a step: the program leaving as it means to (Python itself
    exits with status 0), so the steps it passes through end OK, without an `exception` event, in both
    frameworks. `sys.exit(3)`, `sys.exit("message")` and every other exception are failures."""
    return isinstance(error, SystemExit) and error.code in (None, 0)
