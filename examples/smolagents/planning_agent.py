"""A ToolCallingAgent that plans first and re-plans every two steps (`planning_interval=2`).
Traced with no code change:

    MASSGEN_TRACING=1 python examples/smolagents/planning_agent.py
"""

from __future__ import annotations

from _model import example_model

from massgen_tracing.testing.smolagents_models import Text, final_answer, tool_call
from smolagents import ToolCallingAgent, tool

DISTANCES_KM = {("paris", "lyon"): 465, ("lyon", "marseille"): 315}


@tool
def distance(origin: str, destination: str) -> int:
    """Road distance between two French cities in km.

    Args:
        origin: The starting city.
        destination: The destination city.
    """
    return DISTANCES_KM[(origin.lower(), destination.lower())]


def main() -> None:
    model = example_model([
        Text("1. Get Paris-Lyon.\n2. Get Lyon-Marseille.\n3. Add them."),
        tool_call("distance", origin="Paris", destination="Lyon"),
        tool_call("distance", origin="Lyon", destination="Marseille"),
        Text("1. Add 465 and 315.\n2. Answer."),
        final_answer("Paris to Marseille via Lyon is 780 km."),
    ])
    agent = ToolCallingAgent(tools=[distance], model=model, name="trip_planner", planning_interval=2,
                             max_steps=6)
    print(agent.run("How far is Paris to Marseille by road, going through Lyon?"))


if __name__ == "__main__":
    main()
