"""The semantic cache: exact and embedding tiers, hard-partitioned by project.

Filled by the cache issue; it imports ``genai`` only.
"""
