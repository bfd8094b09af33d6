"""A graph whose second node fails: the node and the run end with ERROR and the exception, and the
program handles the error as it would untraced. Traced with no code change:

    MASSGEN_TRACING=1 python examples/langgraph/failing_graph.py
"""

from __future__ import annotations

from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph


class Order(TypedDict):
    sku: str
    quantity: int
    total: float


def validate(order: Order) -> dict[str, Any]:
    return {"quantity": max(1, order["quantity"])}


def price(order: Order) -> dict[str, Any]:
    prices = {"A-100": 9.5}
    return {"total": prices[order["sku"]] * order["quantity"]}  # KeyError for an unknown SKU


graph = StateGraph(Order)
graph.add_node("validate", validate)
graph.add_node("price", price)
graph.add_edge(START, "validate")
graph.add_edge("validate", "price")
graph.add_edge("price", END)
app = graph.compile(name="checkout")

if __name__ == "__main__":
    try:
        app.invoke({"sku": "B-200", "quantity": 2, "total": 0.0})
    except KeyError as exc:
        print(f"checkout failed: unknown SKU {exc}")
