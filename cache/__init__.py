"""The semantic cache: exact and embedding tiers, hard-partitioned by project.

    from cache import Partition, SemanticCache
    from genai.vectors import InMemoryVectorStore

    cache = SemanticCache(InMemoryVectorStore(), embedder, store=store)
    part = Partition(project_id=7, deployment="support-bot", prompt_version="3")
    cache.store(part, messages, response_body, request_id=rid)
    hit = cache.lookup(part, other_messages)      # CacheHit or None

Entries never cross a :class:`Partition` (project, deployment and revision, adapter,
prompt version, output-changing parameters, knowledge-base version); a semantic candidate
must pass a second check (:class:`LexicalVerifier`) and lead its rivals by a margin.
``cache.langchain.GenAICache`` plugs it into LangChain; ``apps/_cache.py`` into the gateway.
It imports ``genai`` only.
"""

from cache._cache import DEFAULT_MARGIN, DEFAULT_THRESHOLD, CacheHit, SemanticCache
from cache._calibrate import Calibration, calibrate, load_pairs
from cache._entries import CacheStats
from cache._keys import ChatRequest, Partition, RequestKey, output_params, request_key
from cache._verify import LexicalVerifier, Verifier

__all__ = [
    "DEFAULT_MARGIN",
    "DEFAULT_THRESHOLD",
    "CacheHit",
    "CacheStats",
    "Calibration",
    "ChatRequest",
    "LexicalVerifier",
    "Partition",
    "RequestKey",
    "SemanticCache",
    "Verifier",
    "calibrate",
    "load_pairs",
    "output_params",
    "request_key",
]
