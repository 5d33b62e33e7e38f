"""The public API, checked: nothing outside ``genai`` imports its private modules, every
package's ``__all__`` is the list written here and names what it holds, and importing any
package stays light.

A change to an ``__all__`` is a change to the platform's API: update :data:`EXPECTED` in
the same change. What another package needs from ``genai`` is exported by the public
package that owns it (``genai.models``, ``genai.gateway``, ``genai.pool``...), never
imported from a ``_private`` module.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Where code lives that must use genai's public names only.
OUTSIDE = ("apps", "rag", "prompts", "cache", "finetune", "eval", "agents", "bench", "tests")
#: The packages that make up the public API (their public modules are found below them).
PUBLIC_ROOTS = ("genai", "rag", "prompts", "cache", "finetune", "eval", "agents")
#: What importing a package must not import (models, engines and frameworks load on use).
HEAVY = (
    "torch",
    "transformers",
    "peft",
    "chromadb",
    "presidio_analyzer",
    "presidio_anonymizer",
    "vllm",
    "sentence_transformers",
    "langchain",
    "llama_index",
    "ragas",
    "bitsandbytes",
)

#: Tests of genai's own internals that no public name reaches: the test file, the private
#: modules it may import, and why. Keep it short; a public API is the better answer.
INTERNALS: dict[str, tuple[frozenset[str], str]] = {
    "tests/unit/test_tool_calls.py": (
        frozenset({"genai.models._tools"}),
        "tool-call parsers, forced-call schemas and the holding stream, format by format",
    ),
    "tests/unit/test_traffic.py": (
        frozenset({"genai.gateway._traffic"}),
        "routing arithmetic (sticky points, bandit arms, attempt plans) case by case",
    ),
    "tests/unit/test_backoff.py": (
        frozenset({"genai.gateway._http"}),
        "the retry waits the gateway computes, without waiting them",
    ),
    "tests/unit/test_fair_pool.py": (
        frozenset({"genai.gateway._admission", "genai.gateway._endpoints"}),
        "admission limits and embedding batch sizes at their edges",
    ),
    "tests/integration/test_ledger_journal.py": (
        frozenset({"genai.gateway._journal", "genai.gateway._ledger"}),
        "the usage ledger's crash recovery: a dead process's journal replayed exactly once",
    ),
    "tests/unit/test_memory_bounds.py": (
        frozenset({"genai.gateway._cache"}),
        "the bound of the gateway's TTL cache of settings, which has no public face",
    ),
    "tests/unit/test_sentences.py": (
        frozenset({"genai.models._extractive"}),
        "the extractive backend's sentence splitting and context parsing, case by case",
    ),
    "tests/unit/test_vllm_backend.py": (
        frozenset({"genai.models._vllm"}),
        "conversions to and from vLLM's types, tested without vLLM or a GPU",
    ),
    "tests/unit/test_dlp_ner.py": (
        frozenset({"genai.dlp._ner"}),
        "the bundled NER model's files, labels and synthetic training data",
    ),
    "tests/unit/test_responses_translate.py": (
        frozenset(
            {
                "genai.serving._responses",
                "genai.serving._responses_schema",
                "genai.serving._responses_stream",
                "genai.serving._v1_errors",
                "genai.gateway._responses_wire",
            }
        ),
        "the Responses API <-> chat translation case by case (items, formats, stream events)",
    ),
    "tests/unit/test_dlp_detect.py": (
        frozenset({"genai.dlp._ner"}),
        "the bundled NER model's directory, as a spaCy pipeline given by path",
    ),
    "tests/unit/test_dlp_evidence.py": (
        frozenset({"genai.dlp._ner"}),
        "the NER spans' shape-and-context rules and their lexicon, without loading a model",
    ),
}

#: Every public module's ``__all__``, sorted, as whitespace-separated names.
EXPECTED: dict[str, str] = {
    "genai": "Client Context GenAIError InitResult Settings connect errors init",
    "genai.errors": """
        ArtifactIntegrityError AuthenticationError BackendError ConfigError ConflictError
        DlpBlocked Forbidden GenAIError HTTP_STATUS LicenseNotAllowed MissingDependencyError
        NotFoundError PayloadTooLarge PermissionDenied PolicyViolation QuotaExceeded
        StoreUnavailable UnknownBackendError UsageError ValidationError error_body
        http_headers http_status
    """,
    "genai.settings": "DEFAULT_LICENSES Settings",
    "genai.plugins": "Registry",
    "genai.pool": "FairPool PoolOverloaded PoolStats QueueFull offload working_for",
    "genai.files": """
        PRIVATE_DIR PRIVATE_FILE atomic_write_text is_open private_dir private_file
        private_tree private_umask tighten
    """,
    "genai.validation": """
        MAX_ID ascii_int check_metric_name check_project_name check_resource_name first_problem
        check_user_name int_problem iso_date parse_id parse_iso_date
    """,
    "genai.dlp": """
        ACTIONS AccountNumberRecognizer Anonymized Assigned DEFAULT_THRESHOLDS
        DenyListRecognizer Detector
        Detectors Dlp DlpKeys EntityRule Finding LOG_POLICY MemoryVault POLICY_EXAMPLE
        Planned Policy ProjectPolicies RedisVault RegexRecognizer Restorer RestoringFilter
        SqlVault Vault WITHHELD blocked check_blocked effective_policy load_keys mask
        policy_from_options
        render restore_response token_text
    """,
    "genai.deploy": """
        AGENT_PORT GROUP MANAGED_BY PLATFORM_IMAGE PLATFORM_SECRET POSTGRES_SECRET
        URL_ENV VERSION VLLM_IMAGE VLLM_PORT AdapterAction AdapterRef AgentClient
        Autoscaling ClientRegistry Condition EngineOptions GenAIDeploymentSpec
        LoraOptions ObjectKey Observed Plan PlatformOptions PodState RegistryReader
        RequiredSecret ResolvedAdapter ResolvedDeployment ResolvedModel
        ResolvedRevision Resources Revision RevisionState SecretRef ShadowRevision
        Traffic agent_app agent_url carry_out conditions_from crd desired_objects
        dump_yaml fetch_artifact gateway_spec gpus_requested key_of kserve_manifests
        label_value object_name operator_rules parse_k8s_spec platform_manifests
        platform_secret reconcile required_secrets resolve serve_agent service_url
        spec_schema structural write_kustomize
    """,
    "genai.gateway": """
        BanditConfig CacheFeedback CacheStage CachedAnswer CircuitConfig Circuits
        DeploymentSpec DlpNote DlpStatus Gateway GatewayMetrics GatewayOptions
        GatewayRequest InProcessPolicy Journal PerRequest PreparedTarget Price RequestStage
        ResponseStage
        ShadowConfig StageNotes Stages StreamFilter TargetSpec TargetStage TrafficChange
        UpstreamCredentials cpu_pool create_gateway create_gateway_app env_not_allowed
        error_responses inprocess_policy parse_spec refuse_duplicate_keys retarget
        secret_not_set span suggested_secret_name
    """,
    "genai.models": """
        BUNDLED_EMBEDDING_MODEL ChatMessage ContextPassage DEFAULT_EMBEDDER EMBEDDERS
        Embedder ExtractiveBackend FinishReason Generation GenerationChunk GenerationRequest
        LLMBackend LLM_BACKENDS LoadedAdapter NO_CONTEXT_ANSWER NO_MATCH_ANSWER
        OpenAIBackend SamplingParams SentenceTransformerEmbedder ToolCall VLLMBackend
        FunctionChoice ResponseFormat TokenLogprob Tokenizing ToolChoice TopLogprob
        backend_names convert_gguf create_backend create_embedder refuse_unsupported
        register_backend vllm_adapter_problems
    """,
    "genai.models.transformers": "TransformersBackend",
    "genai.progress": "ProgressBar",
    "genai.registry": """
        ActiveRun AdapterVersion Adapters AliasChange Aliases ArtifactStore DatasetVersion
        Datasets DeploymentRevision Deployments EvalResultRecord EvalRunInfo Evals KINDS Lineage
        LineageEdgeInfo LineageGraph MANIFEST_KIND MetricPoint ModelVersion Models
        PromptVersionInfo Prompts Ref Registry RunInfo Runs SuiteVersion Suites code_version
        read_rows
    """,
    "genai.serving": """
        AdapterResolver ChatCompletionRequest CompletionRequest RegistrySource ServerMetrics
        check_body create_app parse_body
    """,
    "genai.store": """
        SCHEMA_REVISION Store check_schema current_revision head_revision mask_url schema
        upgrade
    """,
    "genai.store.schema": """
        Adapter AgentApproval AgentCheckpoint AgentCheckpointWrite AgentRun AgentStep
        AgentToolCall Alias AliasEvent ApiKey AuditEvent Base CacheCounter CacheEntry CacheEstimate
        CacheHit Counter Dataset Deployment DlpVaultEntry EvalResult EvalRun EvalSuite Feedback
        KbAnswer
        KbDocument
        KnowledgeBase LineageEdge Membership Model Principal Project ProjectSecret
        PromptVersion PublishedApp Quota Run RunMetric ShadowResult StoredResponse UsageRecord
        utcnow
    """,
    "genai.tenancy": """
        Action ApiKeyInfo AsyncCounters AsyncMemoryCounters AsyncQuotaEnforcer
        AsyncRedisCounters Audit AuditEntry Counters CreatedKey FeedbackRow GROUPS KEY_PATTERN Keys
        MemberInfo MemoryCounters PERMISSIONS Principal ProjectInfo Projects QuotaEnforcer
        QuotaLimits QuotaStatus Quotas RedisCounters Resource Role SecretInfo Secrets
        ShadowRow SqlCounters Usage UsageEvent UsageReport UsageRow UserInfo Users authorize
        load_limits parse_duration parse_role read_secret secret_sealer verify_key
        write_usage
    """,
    "genai.testing": """
        AsyncCountersSuite CHATML_TEMPLATE CacheStageSuite CountersSuite EmbedderSuite
        HERMES_TOOLS_TEMPLATE FakeEmbedder FakeFineTuningServer FakeLLM FakeOIDCProvider
        FakeOpenAIServer FakeReply LLMBackendSuite
        ManualClock RequestStageSuite
        ResponseStageSuite StageRequests TargetStageSuite VaultSuite VectorStoreSuite
        running_server smollm2_model tiny_adapter tiny_model
    """,
    "genai.vectors": """
        ChromaVectorStore InMemoryVectorStore MetadataValue VECTOR_STORES VectorMatch
        VectorStore Where check_collection chroma_settings collection_name
        create_vector_store embedded_client
    """,
    "rag": """
        Answer AnswerTrace ChatModel ChatOptions ChatPlan ChatPrompt Chunk ChunkMetadata Citation
        CrossEncoderReranker CsvLoader DEFAULTS DEFAULT_EXCLUDE Document
        DocxLoader Draft FilterValue Filters Fusion HtmlLoader IngestReport JsonLoader
        KnowledgeBase KnowledgeBaseInfo KnowledgeBases KnowledgeChat LOADERS
        LlamaIndexLoader Loader MarkdownLoader NOTHING_FOUND OPERATORS PdfLoader Redact
        Reranker RetrievalDefaults Scalar SearchMode SparseCache Splitter SplitterConfig
        TextLoader
        TextSplitter TokenCounter collect_files langchain_retriever llama_index_retriever
        load_file markdown_sections mmr reciprocal_rank_fusion register_loader
        supported_suffixes weighted_fusion
    """,
    "prompts": """
        ChatMessages LastGoodCache Message PromptHub PromptTemplate PromptVersion ROLES
        TEXT_SUFFIXES TYPES Variable from_dict is_unreachable load parse_ref to_yaml
    """,
    "cache": """
        BoundStats CacheHit CacheOptions CacheStats Calibration ChatRequest DEFAULT_MARGIN
        DEFAULT_THRESHOLD DeploymentEstimate ErrorBound ErrorCurve LexicalVerifier PairScorer
        PairVerifier Partition ProjectCaches RequestKey SemanticCache Verifier
        VerifierCalibration artefact_installed calibrate calibrate_verifier fit_curve
        load_pairs output_params request_key
    """,
    "cache.langchain": "GenAICache",
    "cache.testing": "EntryStoreSuite",
    "cache.train_verifier": "main",
    "eval": """
        Answer CanaryResult CanaryStep Check Citation Comparison EXIT_CODES Estimate EvalJob
        EvalRow FeedbackSignal GateResult GatewayTarget Judge LmEvalJob LmEvalScore METRICS
        Message Metric MetricEnv
        MetricInfo MetricKind MetricSpec MetricSummary MetricValue Promotion PromotionRefused
        RowResult RunSummary SIGNALS Sample ShadowJob Signal Suite Threshold build_metrics canary
        compare compare_independent compare_runs compare_with estimate find_baseline gate
        gate_run junit_xml lm_eval
        load_run load_suite promote render_html resume rows_of run shadow split_target suite_of
        summarize write_html write_junit
    """,
    "eval.pytest_plugin": "EvalSession genai_eval",
    "finetune": """
        IGNORE Collator DataFormat Encoded Encoder Example FineTuneConfig FineTuneJob LossOn
        Method Problem ValidationReport VendorFineTuneJob detect_format load_config prepare
        resume train validate validate_rows
    """,
    "agents": """
        HANDOFF_PREFIX PLATFORM_TOOLS STOP_STATUSES Agent AgentEvent AgentRunner ApprovalInfo
        Budget MCPServer MCPServerInfo MCPServers ModelTurn PlatformTool RunInfo StepInfo
        StoreCheckpointer
        StreamAssembler Tool ToolCallRequest ToolOutcome agent_from_dict function_tool
        load_agent parse_message tool
    """,
}


# ---------------------------------------------------------------- no private imports


def private_imports(path: Path) -> Iterator[tuple[int, str]]:
    """``(line, module)`` for each import of a private module of genai in ``path``; the
    module is named down to its first private part (``genai.dlp._ner``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found = _private_prefix(alias.name)
                if found:
                    yield node.lineno, found
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found = _private_prefix(node.module)
            if found:
                yield node.lineno, found
                continue
            for alias in node.names:
                found = _private_prefix(f"{node.module}.{alias.name}")
                if found:
                    yield node.lineno, found


def _private_prefix(dotted: str) -> str | None:
    parts = dotted.split(".")
    if parts[0] != "genai":
        return None
    for index, part in enumerate(parts):
        if part.startswith("_") and not (part.startswith("__") and part.endswith("__")):
            return ".".join(parts[: index + 1])
    return None


def _outside_files() -> Iterator[Path]:
    for top in OUTSIDE:
        if (ROOT / top).is_dir():
            for path in sorted((ROOT / top).rglob("*.py")):
                # hidden folders are not ours: bench/.venvs holds the peers' virtualenvs
                if not any(p.startswith(".") for p in path.relative_to(ROOT).parts):
                    yield path


def test_no_module_outside_genai_imports_its_private_modules() -> None:
    violations = []
    for path in _outside_files():
        rel = path.relative_to(ROOT).as_posix()
        allowed = INTERNALS.get(rel, (frozenset(), ""))[0]
        for line, module in private_imports(path):
            if module not in allowed:
                violations.append(f"{rel}:{line} imports {module}")
    assert not violations, (
        "import genai's public names instead (export what is missing from the package that "
        "owns it):\n" + "\n".join(violations)
    )


def test_every_allowed_internal_import_is_still_made() -> None:
    stale: list[str] = []
    for rel, (modules, _reason) in INTERNALS.items():
        path = ROOT / rel
        made = {module for _, module in private_imports(path)} if path.exists() else set()
        stale.extend(f"{rel}: {module}" for module in sorted(modules - made))
    assert not stale, "drop these from INTERNALS:\n" + "\n".join(stale)


def test_the_checker_sees_private_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "import genai._crypto\n"
        "import genai.pool\n"
        "from genai.models._embedders import create_embedder\n"
        "from genai.models import _vllm, create_backend\n"
        "from genai import __version__, Client\n"
        "def f():\n"
        "    from genai.dlp._ner.synth import generate\n"
    )
    assert sorted(module for _, module in private_imports(module)) == [
        "genai._crypto",
        "genai.dlp._ner",
        "genai.models._embedders",
        "genai.models._vllm",
    ]


# ---------------------------------------------------------------- __all__


def public_modules() -> set[str]:
    """Every importable module of the public packages without a private part in its name."""
    found = set()
    for top in PUBLIC_ROOTS:
        for path in (ROOT / top).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            if "migrations" in parts or any(p.startswith("_") for p in parts):
                continue
            found.add(".".join(parts))
    return found


def test_every_public_module_has_an_expected_api() -> None:
    assert public_modules() == set(EXPECTED), (
        "a public module was added or removed: list its __all__ in EXPECTED (or make it private)"
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_all_is_the_expected_list(name: str) -> None:
    module = importlib.import_module(name)
    declared = module.__dict__.get("__all__")
    assert isinstance(declared, list), f"{name} declares no __all__"
    assert len(declared) == len(set(declared)), f"{name}.__all__ names something twice"
    assert sorted(declared) == sorted(EXPECTED[name].split()), (
        f"{name}.__all__ changed: update EXPECTED if the change is meant"
    )
    missing = [attr for attr in declared if not hasattr(module, attr)]
    assert not missing, f"{name}.__all__ names what it does not hold: {missing}"


# ---------------------------------------------------------------- light imports


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_importing_stays_light(name: str) -> None:
    code = (
        f"import importlib, sys; importlib.import_module({name!r}); "
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}); "
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "", f"import {name} pulled in: {out.stdout.strip()}"
