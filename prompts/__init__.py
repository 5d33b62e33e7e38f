"""Prompt management: templates, a per-project registry with labels, rendering, clients.

Filled by the prompts issue; it imports ``genai`` only.
"""
