"""A ToolCallingAgent with a slow tool. Traced with no code change:

    MASSGEN_TRACING=1 python examples/smolagents/tool_calling_agent.py
"""

from __future__ import annotations

import time

from _model import example_model

from massgen_tracing.testing.smolagents_models import final_answer, tool_call
from smolagents import ToolCallingAgent, tool


@tool
def get_weather(city: str) -> str:
    """Returns today's weather for a city (a slow web service).

    Args:
        city: The city name.
    """
    time.sleep(1.0)
    return {"paris": "sunny, 24°C", "oslo": "snow, -3°C"}.get(city.lower(), "cloudy, 15°C")


@tool
def convert_to_fahrenheit(celsius: float) -> float:
    """Converts a temperature from Celsius to Fahrenheit.

    Args:
        celsius: The temperature in degrees Celsius.
    """
    return round(celsius * 9 / 5 + 32, 1)


def main() -> None:
    model = example_model([
        tool_call("get_weather", city="Paris"),
        tool_call("convert_to_fahrenheit", celsius=24),
        final_answer("Paris is sunny today: 24°C (75.2°F)."),
    ])
    agent = ToolCallingAgent(
        tools=[get_weather, convert_to_fahrenheit], model=model, name="weather_agent", max_steps=5,
        stream_outputs=True,
    )
    print(agent.run("What is the weather in Paris today, in Fahrenheit?"))


if __name__ == "__main__":
    main()
