"""A CodeAgent managing a ToolCallingAgent; its first code step fails and the next one recovers.
Traced with no code change:

    MASSGEN_TRACING=1 python examples/smolagents/code_agent_managed.py
"""

from __future__ import annotations

from _model import example_model

from massgen_tracing.testing.smolagents_models import code, final_answer, tool_call
from smolagents import CodeAgent, ToolCallingAgent, tool

PRICES = {"apple": 0.5, "bread": 2.25, "milk": 1.2}


@tool
def price_of(item: str) -> float:
    """Looks up the unit price of a grocery item in euros.

    Args:
        item: The item name, e.g. "apple".
    """
    return PRICES[item]


def main() -> None:
    shopper = ToolCallingAgent(
        tools=[price_of], name="price_agent", description="Finds grocery prices. Give it a list of items.",
        model=example_model([
            tool_call("price_of", item="bread"),
            tool_call("price_of", item="milk"),
            final_answer("bread: 2.25 EUR, milk: 1.2 EUR"),
        ]),
    )
    manager = CodeAgent(
        tools=[], managed_agents=[shopper], name="manager", max_steps=5,
        model=example_model([
            # The first attempt divides by an empty basket: an execution error the agent recovers from.
            code("basket = []\nprint('items:', len(basket))\naverage = 10 / len(basket)",
                 thought="I will compute the average price first."),
            code('prices = price_agent(task="Prices of bread and milk?")\nprint(prices)\n'
                 'final_answer("Bread and milk cost 3.45 EUR together.")',
                 thought="The basket was empty; I will ask the price agent instead."),
        ]),
    )
    print(manager.run("How much do bread and milk cost together?"))


if __name__ == "__main__":
    main()
