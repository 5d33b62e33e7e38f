"""Tools the hosted-agent tests name in deployments (``python: _agent_tools:weather``)."""

import agents


@agents.tool
def weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: The city's name.
    """
    return f"sunny in {city}"
