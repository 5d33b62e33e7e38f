"""Agents: tool-using agents and multi-agent orchestration.

Filled by the agents issue; it may import the capability packages and ``genai``.
"""

__all__: list[str] = []
