"""The semantic cache: exact and embedding tiers, hard-partitioned by project.

    from cache import Partition, SemanticCache
    from genai.vectors import InMemoryVectorStore

    cache = SemanticCache(InMemoryVectorStore(), embedder, store=store)
    part = Partition(project_id=7, deployment="support-bot", prompt_version="3")
    cache.store(part, messages, response_body, request_id=rid)
    hit = cache.lookup(part, other_messages)      # CacheHit or None

Entries never cross a :class:`Partition` (project, endpoint, deployment and revision,
adapter, prompt version, the parameters that change the answer or its shape, knowledge-base
version); a semantic candidate must pass a second check (:class:`LexicalVerifier`: negation,
antonyms, numbers, names, and the order and roles of the operands) and lead its rivals by a
margin, and — with the trained :class:`PairVerifier` — be judged the same question by a
cross-encoder, read through the project's error bound (``max_error``, :class:`ErrorBound`).
In the gateway the cache is off unless a project turns it on (``cache/_options.py``).
``cache.langchain.GenAICache`` plugs it into LangChain; ``apps/_cache.py`` into the gateway.
It imports ``genai`` only.
"""

from cache._bound import BoundStats, ErrorBound, ErrorCurve, fit_curve
from cache._cache import DEFAULT_MARGIN, DEFAULT_THRESHOLD, CacheHit, SemanticCache
from cache._calibrate import Calibration, calibrate, load_pairs
from cache._calibrate_verifier import VerifierCalibration, calibrate_verifier
from cache._entries import CacheStats
from cache._judge import PairScorer
from cache._keys import ChatRequest, Partition, RequestKey, output_params, request_key
from cache._options import CacheOptions
from cache._pair import PairVerifier, artefact_installed
from cache._projects import DeploymentEstimate, ProjectCaches
from cache._verify import LexicalVerifier, Verifier

__all__ = [
    "DEFAULT_MARGIN",
    "DEFAULT_THRESHOLD",
    "BoundStats",
    "CacheHit",
    "CacheOptions",
    "CacheStats",
    "Calibration",
    "ChatRequest",
    "DeploymentEstimate",
    "ErrorBound",
    "ErrorCurve",
    "LexicalVerifier",
    "PairScorer",
    "PairVerifier",
    "Partition",
    "ProjectCaches",
    "RequestKey",
    "SemanticCache",
    "Verifier",
    "VerifierCalibration",
    "artefact_installed",
    "calibrate",
    "calibrate_verifier",
    "fit_curve",
    "load_pairs",
    "output_params",
    "request_key",
]
