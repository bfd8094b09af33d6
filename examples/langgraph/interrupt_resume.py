"""Human in the loop: the graph drafts a reply, pauses with `interrupt()` for approval, and resumes with
`Command(resume=...)` on the same thread. Traced with no code change:

    MASSGEN_TRACING=1 python examples/langgraph/interrupt_resume.py
"""

from __future__ import annotations

from typing import Any, TypedDict

from _model import example_model
from langgraph.checkpoint.memory import MemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

model = example_model(["Thanks for your patience: your refund of 42 EUR was sent today and should arrive "
                       "within three business days."])


class Ticket(TypedDict):
    request: str
    draft: str
    decision: str


def draft_reply(state: Ticket) -> dict[str, Any]:
    reply = model.invoke(f"Draft a short, friendly answer to: {state['request']}")
    return {"draft": str(reply.content)}


def human_review(state: Ticket) -> dict[str, Any]:
    decision = interrupt({"question": "Send this reply?", "draft": state["draft"]})
    return {"decision": decision}


def send(state: Ticket) -> dict[str, Any]:
    print(f"sent: {state['draft']}" if state["decision"] == "approve" else "not sent")
    return {}


graph = StateGraph(Ticket)
graph.add_node("draft_reply", draft_reply)
graph.add_node("human_review", human_review)
graph.add_node("send", send)
graph.add_edge(START, "draft_reply")
graph.add_edge("draft_reply", "human_review")
graph.add_edge("human_review", "send")
graph.add_edge("send", END)
app = graph.compile(name="support_desk", checkpointer=MemorySaver())


def main() -> None:
    config = {"configurable": {"thread_id": "ticket-1017"}}
    paused = app.invoke({"request": "Where is my refund?", "draft": "", "decision": ""}, config)
    question = paused["__interrupt__"][0].value
    print(f"{question['question']}\n  {question['draft']}")
    app.invoke(Command(resume="approve"), config)  # a person approved


if __name__ == "__main__":
    main()
