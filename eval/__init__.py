"""Evaluation: suites, repeated runs with confidence intervals, eval-gated promotion.

Filled by the evaluation issue; it imports ``genai`` only.
"""

__all__: list[str] = []
