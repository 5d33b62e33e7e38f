"""Platform settings: one object, read from ``GENAI_*`` environment variables, passed down.

Nothing in the platform reads the environment on its own: the composition root (the CLI,
the gateway process, a notebook) builds one :class:`Settings` and hands it to
:func:`genai.connect` or to the parts it wires together.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["DEFAULT_LICENSES", "Settings"]

#: Licences a base model may carry unless ``GENAI_LICENSE_ALLOWLIST`` says otherwise
#: (SPDX-style ids, lower case).
DEFAULT_LICENSES: tuple[str, ...] = (
    "apache-2.0",
    "mit",
    "bsd-2-clause",
    "bsd-3-clause",
    "cc-by-4.0",
    "cc-by-sa-4.0",
    "openrail",
    "llama3",
    "llama3.1",
    "llama3.2",
    "llama3.3",
    "gemma",
)


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _default_user() -> str:
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        name = os.environ.get("USER", "") or "local"
    return name.lower()


class Settings(BaseSettings):
    """Every setting of the platform. Each field is read from ``GENAI_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="GENAI_", extra="ignore", frozen=True)

    home: Path = Field(
        default_factory=lambda: Path("~/.genai").expanduser(),
        description="Directory for the embedded database, artifacts and vectors.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the metadata store; SQLite under home when unset. "
        "PostgreSQL: postgresql+psycopg://user@host:5432/db",
    )
    artifact_root: str | None = Field(
        default=None,
        description="Where artifacts live: a directory or any fsspec URL (s3://, gs://); "
        "home/artifacts when unset.",
    )
    vector_path: Path | None = Field(
        default=None, description="Chroma persistent directory; home/chroma when unset."
    )
    chroma_url: str | None = Field(
        default=None, description="A Chroma server (http://host:port) instead of the embedded one."
    )
    embedding_model: str = Field(
        default="all-MiniLM-L6-v2",
        description="Embedding model: 'all-MiniLM-L6-v2' (bundled, offline) or a local path.",
    )
    redis_url: str | None = Field(
        default=None, description="Redis for shared counters (rate limits, quotas)."
    )
    redis_prefix: str = Field(
        default="genai:", description="Prefix of this platform's Redis keys (share one Redis)."
    )
    user: str = Field(
        default_factory=_default_user,
        description="The local user the CLI and Python API act as.",
    )
    license_allowlist: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_LICENSES),
        description="Licences a registered base model may carry (comma-separated).",
    )
    protected_aliases: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["production"],
        description="Aliases only maintainers and owners may move (comma-separated).",
    )
    admin_token: SecretStr | None = Field(
        default=None,
        description="The operator token of the gateway: /metrics and platform-wide admin API.",
    )
    self_service_projects: bool = Field(
        default=True, description="Whether any registered user may create projects."
    )
    max_keys_per_project: int = Field(
        default=100,
        ge=1,
        description="Active API keys a project may hold (unrevoked and unexpired); creating "
        "one more is refused until a key is revoked.",
    )
    dlp_key: SecretStr | None = Field(
        default=None,
        description="Key of the DLP vault (any long secret; the same on every gateway "
        "process); home/dlp.key (made once, mode 0600) when unset.",
    )
    dlp_ner: str | None = Field(
        default=None,
        description="The DLP detector's NER model ('none': patterns only); the detector's "
        "default when unset.",
    )
    dlp_policy: Path | None = Field(
        default=None,
        description="A DLP policy file (YAML or JSON) for projects that set none; without "
        "it such projects run without DLP.",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Key that encrypts project secrets (any long secret; the same on every "
        "process that shares the database); home/secret.key (made once, mode 0600) when unset.",
    )
    secret_env_allowlist: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Environment variables of the gateway that deployments may name as "
        "api_key_env (comma-separated; empty: none, use project secrets).",
    )
    inprocess_backends: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["extractive", "fake"],
        description="Backends a deployment (or a knowledge bot's LLM) may run inside the "
        "gateway process (comma-separated; the default loads no weights of its own).",
    )
    model_roots: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Directories in-process backends named by deployments may load model "
        "and adapter files from (comma-separated; empty: none but the bundled embedder).",
    )

    oidc_issuer: str | None = Field(
        default=None,
        description="The Hub's single sign-on: an OpenID Connect issuer URL (its "
        "/.well-known/openid-configuration is read); unset: no OIDC sign-in.",
    )
    oidc_client_id: str | None = Field(
        default=None, description="The Hub's client id at the OIDC provider."
    )
    oidc_client_secret: SecretStr | None = Field(
        default=None, description="The Hub's client secret at the OIDC provider."
    )
    oidc_client_secret_file: Path | None = Field(
        default=None, description="A file holding the client secret (instead of the variable)."
    )
    oidc_scopes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["openid", "profile", "email"],
        description="Scopes the Hub asks the OIDC provider for (comma-separated).",
    )
    oidc_user_claim: str = Field(
        default="preferred_username",
        description="The ID token's claim that names the platform user (e.g. 'email').",
    )
    oidc_provider_name: str = Field(
        default="single sign-on",
        description="What the sign-in page calls the provider ('Sign in with <name>').",
    )
    oidc_create_users: bool = Field(
        default=False,
        description="Whether a person the provider vouches for but the platform does not "
        "know is registered as a user (with no project) on first sign-in.",
    )
    oidc_redirect_url: str | None = Field(
        default=None,
        description="The Hub's callback URL as the provider sees it (behind a proxy); "
        "from the request when unset.",
    )

    @field_validator(
        "license_allowlist",
        "protected_aliases",
        "secret_env_allowlist",
        "inprocess_backends",
        "model_roots",
        "oidc_scopes",
        mode="before",
    )
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("license_allowlist", mode="after")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [item.lower() for item in value]

    @field_validator("home", "vector_path", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @property
    def resolved_database_url(self) -> str:
        """The database URL in use: the configured one, or SQLite under ``home``."""
        return self.database_url or f"sqlite:///{self.home / 'genai.db'}"

    @property
    def resolved_artifact_root(self) -> str:
        return self.artifact_root or str(self.home / "artifacts")

    @property
    def resolved_vector_path(self) -> Path:
        return self.vector_path or self.home / "chroma"
