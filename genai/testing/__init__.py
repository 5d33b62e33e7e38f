"""What the platform ships for its users' own tests: tiny real models and adapters.

Fakes and conformance suites join as backends gain them.
"""

from genai.testing._tiny import CHATML_TEMPLATE, tiny_adapter, tiny_model

__all__ = ["CHATML_TEMPLATE", "tiny_adapter", "tiny_model"]
