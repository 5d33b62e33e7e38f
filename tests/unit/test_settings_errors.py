"""Settings from GENAI_* variables, the error tree's HTTP statuses and messages, name rules."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pydantic
import pytest

from genai import errors
from genai.settings import DEFAULT_LICENSES, Settings
from genai.validation import check_project_name, check_resource_name, check_user_name

# --------------------------------------------------------------------------- settings


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_defaults_put_everything_under_the_home_directory(home: Path) -> None:
    settings = Settings()
    assert settings.home == home / ".genai"
    assert settings.database_url is None
    assert settings.resolved_database_url == f"sqlite:///{home / '.genai' / 'genai.db'}"
    assert settings.resolved_artifact_root == str(home / ".genai" / "artifacts")
    assert settings.resolved_vector_path == home / ".genai" / "chroma"
    assert settings.license_allowlist == list(DEFAULT_LICENSES)
    assert settings.protected_aliases == ["production"]
    assert settings.redis_url is None
    assert settings.self_service_projects is True


def test_genai_home_expands_the_tilde(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENAI_HOME", "~/platform")
    monkeypatch.setenv("GENAI_VECTOR_PATH", "~/vectors")

    settings = Settings()

    assert settings.home == home / "platform"
    assert settings.resolved_database_url == f"sqlite:///{home / 'platform' / 'genai.db'}"
    assert settings.resolved_vector_path == home / "vectors"


def test_each_field_is_read_from_its_genai_variable(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "postgresql+psycopg://app@127.0.0.1:5432/genai"
    for name, value in {
        "GENAI_DATABASE_URL": url,
        "GENAI_REDIS_URL": "redis://127.0.0.1:6379/0",
        "GENAI_ARTIFACT_ROOT": "s3://bucket/artifacts",
        "GENAI_USER": "bob",
        "GENAI_SELF_SERVICE_PROJECTS": "false",
        "GENAI_EMBEDDING_MODEL": "/models/e5",
    }.items():
        monkeypatch.setenv(name, value)

    settings = Settings()

    assert settings.resolved_database_url == url
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.resolved_artifact_root == "s3://bucket/artifacts"
    assert settings.user == "bob"
    assert settings.self_service_projects is False
    assert settings.embedding_model == "/models/e5"


def test_license_allowlist_is_comma_separated_and_lower_cased(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GENAI_LICENSE_ALLOWLIST", " MIT, Apache-2.0 ,,LLAMA3.1 ")
    assert Settings().license_allowlist == ["mit", "apache-2.0", "llama3.1"]


def test_protected_aliases_are_comma_separated(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENAI_PROTECTED_ALIASES", "production, staging ,")
    assert Settings().protected_aliases == ["production", "staging"]


def test_arguments_win_over_the_environment(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENAI_USER", "bob")
    monkeypatch.setenv("GENAI_LICENSE_ALLOWLIST", "mit")
    settings = Settings(user="carol", license_allowlist=["Apache-2.0"])
    assert (settings.user, settings.license_allowlist) == ("carol", ["apache-2.0"])


def test_settings_are_frozen(home: Path) -> None:
    settings = Settings()
    with pytest.raises(pydantic.ValidationError):
        settings.user = "mallory"  # type: ignore[misc]


# --------------------------------------------------------------------------- errors

STATUS = {
    errors.GenAIError: 500,
    errors.UsageError: 400,
    errors.ConfigError: 400,
    errors.ValidationError: 400,
    errors.MissingDependencyError: 400,
    errors.UnknownBackendError: 400,
    errors.PayloadTooLarge: 413,
    errors.NotFoundError: 404,
    errors.ConflictError: 409,
    errors.PermissionDenied: 403,
    errors.AuthenticationError: 401,
    errors.Forbidden: 403,
    errors.QuotaExceeded: 429,
    errors.PolicyViolation: 400,
    errors.DlpBlocked: 400,
    errors.LicenseNotAllowed: 400,
    errors.BackendError: 502,
    errors.StoreUnavailable: 503,
    errors.ArtifactIntegrityError: 502,
}


def _instance(cls: type[errors.GenAIError]) -> errors.GenAIError:
    if issubclass(cls, errors.MissingDependencyError):
        return cls("chromadb", extra="vectors", purpose="the Chroma vector store")
    if issubclass(cls, errors.UnknownBackendError):
        return cls("llm", "vlm", ["vllm", "extractive"])
    if cls is errors.BackendError:
        return cls("upstream failed", backend="openai", status=500)
    return cls("something went wrong")


def _error_classes() -> list[type[errors.GenAIError]]:
    return [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, errors.GenAIError) and obj.__module__ == errors.__name__
    ]


def test_every_error_class_has_an_expected_status() -> None:
    assert set(_error_classes()) == set(STATUS)
    assert set(errors.__all__) >= {cls.__name__ for cls in STATUS}


@pytest.mark.parametrize("cls", list(STATUS), ids=lambda cls: cls.__name__)
def test_http_status_of_each_error_class(cls: type[errors.GenAIError]) -> None:
    assert errors.http_status(_instance(cls)) == STATUS[cls]


def test_http_status_of_a_subclass_is_its_nearest_ancestors() -> None:
    class ModelMissing(errors.NotFoundError):
        pass

    class KeyExpired(errors.AuthenticationError):
        pass

    assert errors.http_status(ModelMissing("no model")) == 404
    assert errors.http_status(KeyExpired("expired")) == 401


def test_the_tree_has_the_documented_branches() -> None:
    assert issubclass(errors.QuotaExceeded, errors.PermissionDenied)
    assert issubclass(errors.StoreUnavailable, errors.BackendError)
    assert issubclass(errors.LicenseNotAllowed, errors.PolicyViolation)
    assert issubclass(errors.UnknownBackendError, errors.UsageError)
    unavailable = errors.StoreUnavailable("down")
    assert (unavailable.backend, unavailable.retryable) == ("database", True)
    assert errors.QuotaExceeded("slow down", retry_after=12.5).retry_after == 12.5
    assert errors.ValidationError("bad", field="rank").field == "rank"


def test_missing_dependency_names_the_extra_to_install() -> None:
    error = errors.MissingDependencyError("presidio_analyzer", extra="dlp", purpose="PII detection")
    assert str(error) == (
        "PII detection needs the Python package 'presidio_analyzer', which is not installed: "
        "run `pip install 'genai-platform[dlp]'`"
    )
    assert (error.package, error.extra) == ("presidio_analyzer", "dlp")


def test_unknown_backend_lists_the_known_names() -> None:
    error = errors.UnknownBackendError("llm", "vlm", ["vllm", "extractive", "transformers"])
    assert "unknown llm backend 'vlm'" in str(error)
    assert "known backends: extractive, transformers, vllm" in str(error)
    assert error.known == ["extractive", "transformers", "vllm"]
    assert "(none registered)" in str(errors.UnknownBackendError("vectors", "x", []))


# --------------------------------------------------------------------------- names

PROJECT_OK = ["abc", "payments-bot", "a1b", "team-42", "a" + "b" * 38 + "c"]
PROJECT_BAD = [
    "ab",
    "a" * 41,
    "Abc",
    "1abc",
    "abc-",
    "-abc",
    "a_b",
    "a.b",
    "a b",
    "",
    "abc\n",
    "ünï",
]
RESOURCE_OK = ["a", "Z", "7", "support-faq_v2", "Llama-3.1-8B", "x" * 100]
RESOURCE_BAD = ["", "-a", "a-", ".a", "a.", "_a", "a b", "a/b", "a@b", "x" * 101, "a\n", "é"]
USER_OK = ["alice", "alice@corp.com", "a", "0day", "bob.smith_2-x", "x" * 100]
USER_BAD = ["", "Alice", "-alice", "@corp", ".alice", "a b", "ali/ce", "x" * 101, "alice\n"]


@pytest.mark.parametrize("name", PROJECT_OK)
def test_valid_project_names(name: str) -> None:
    assert check_project_name(name) == name


@pytest.mark.parametrize("name", [*PROJECT_BAD, None, 42])
def test_invalid_project_names(name: object) -> None:
    with pytest.raises(errors.ValidationError, match="invalid project name") as caught:
        check_project_name(name)  # type: ignore[arg-type]
    assert caught.value.field == "project"
    assert "payments-bot" in str(caught.value)  # shows a valid example


@pytest.mark.parametrize("name", RESOURCE_OK)
def test_valid_resource_names(name: str) -> None:
    assert check_resource_name(name, kind="dataset") == name


@pytest.mark.parametrize("name", [*RESOURCE_BAD, None])
def test_invalid_resource_names_name_the_kind(name: object) -> None:
    expected = re.escape(f"invalid dataset {name!r}")
    with pytest.raises(errors.ValidationError, match=expected) as caught:
        check_resource_name(name, kind="dataset")  # type: ignore[arg-type]
    assert caught.value.field == "dataset"


@pytest.mark.parametrize("name", USER_OK)
def test_valid_user_names(name: str) -> None:
    assert check_user_name(name) == name


@pytest.mark.parametrize("name", USER_BAD)
def test_invalid_user_names(name: str) -> None:
    with pytest.raises(errors.ValidationError, match="invalid user name") as caught:
        check_user_name(name)
    assert caught.value.field == "user"
