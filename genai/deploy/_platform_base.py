"""The options of the platform's own manifests, and what every platform object shares.

:class:`PlatformOptions` says what to run (gateway size, which of PostgreSQL, Redis and
Chroma run in the cluster and which are managed elsewhere, storage, the operator); the
helpers here give every object the same names, labels and security settings. Secret values
never appear in a manifest: a managed service's URL reaches the pods through a
``secretKeyRef`` to a Secret the administrator creates, and the in-cluster PostgreSQL
password through ``PGPASSWORD`` read from the Secret ``genai-postgres``.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator
from pydantic import ValidationError as PydanticValidationError

from genai.deploy._resolve import PLATFORM_IMAGE
from genai.errors import ValidationError
from genai.validation import first_problem

__all__ = [
    "CHROMA_IMAGE",
    "CHROMA_PORT",
    "GATEWAY_PORT",
    "PLATFORM_SECRET",
    "POSTGRES_IMAGE",
    "POSTGRES_PORT",
    "POSTGRES_SECRET",
    "REDIS_IMAGE",
    "REDIS_PORT",
    "URL_ENV",
    "Manifest",
    "PlatformOptions",
    "SecretRef",
    "container_security",
    "labels",
    "metadata",
    "pod_security",
    "selector",
    "service_host",
    "url_env",
]

Manifest = dict[str, Any]

#: Pinned images of the services the platform runs when no managed one is given.
POSTGRES_IMAGE = "postgres:17.6"
REDIS_IMAGE = "redis:8.2.1"
#: The Chroma server: the same release as the ``chromadb`` client the platform pins.
CHROMA_IMAGE = "chromadb/chroma:1.5.9"

GATEWAY_PORT = 4000
POSTGRES_PORT = 5432
REDIS_PORT = 6379
CHROMA_PORT = 8000

#: The Secret the administrator creates: GENAI_SECRET_KEY, GENAI_DLP_KEY, GENAI_ADMIN_TOKEN,
#: and the URLs of managed services (GENAI_DATABASE_URL, GENAI_REDIS_URL, GENAI_CHROMA_URL).
PLATFORM_SECRET = "genai-platform"
#: The Secret holding the in-cluster PostgreSQL password (key ``password``).
POSTGRES_SECRET = "genai-postgres"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
_IMAGE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._/:@-]{0,254}$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$")
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://\S+$")
_SCHEMES: dict[str, tuple[str, ...]] = {
    "postgres_url": ("postgresql://", "postgresql+psycopg://", "postgres://"),
    "redis_url": ("redis://", "rediss://"),
    "chroma_url": ("http://", "https://"),
}
#: The variable each managed service's URL is read into (genai.settings).
URL_ENV = {
    "postgres": "GENAI_DATABASE_URL",
    "redis": "GENAI_REDIS_URL",
    "chroma": "GENAI_CHROMA_URL",
}


def _usage(error: PydanticValidationError, what: str) -> ValidationError:
    """Pydantic's first error as the platform's ValidationError, naming the field."""
    where, message = first_problem(error, what)
    return ValidationError(f"invalid {what} {where}: {message}", field=where)


class SecretRef(BaseModel):
    """A key of a Secret in the platform's namespace."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    key: str

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except PydanticValidationError as error:
            raise _usage(error, "Secret reference") from None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _DNS_SUBDOMAIN.match(value):
            raise ValueError(f"{value!r} is not a Secret name (lower-case DNS subdomain)")
        return value

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        if not _SECRET_KEY.match(value):
            raise ValueError(f"{value!r} is not a Secret key ([-._a-zA-Z0-9]+)")
        return value

    @classmethod
    def parse(cls, text: str) -> SecretRef:
        """``NAME/KEY`` (the command line's form)."""
        name, sep, key = text.partition("/")
        if not sep:
            raise ValidationError(f"a Secret key is NAME/KEY, not {text!r}", field="secret")
        return cls(name=name, key=key)


class PlatformOptions(BaseModel):
    """What ``platform_manifests`` renders. Invalid values raise
    :class:`genai.errors.ValidationError` naming the field."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    namespace: str = Field(default="genai-system", description="The platform's namespace.")
    image: str = Field(
        default=PLATFORM_IMAGE, description="The platform's image (gateway, operator)."
    )
    gateway_workers: int = Field(default=2, ge=1, le=64, description="Worker processes per pod.")
    gateway_replicas: int = Field(default=2, ge=1, le=100, description="Gateway pods.")
    gateway_cpu: str = Field(default="2", description="CPU of a gateway pod.")
    gateway_memory: str = Field(default="2Gi", description="Memory of a gateway pod.")
    postgres_url: SecretStr | None = Field(
        default=None, description="A managed PostgreSQL (never rendered); None: run one."
    )
    postgres_url_secret: SecretRef | None = Field(
        default=None, description="Where the managed PostgreSQL URL is; implies managed."
    )
    redis_url: SecretStr | None = None
    redis_url_secret: SecretRef | None = None
    chroma_url: SecretStr | None = None
    chroma_url_secret: SecretRef | None = None
    postgres_storage: str = Field(default="20Gi", description="PostgreSQL's volume.")
    chroma_storage: str = Field(default="20Gi", description="Chroma's volume.")
    storage_class: str | None = Field(default=None, description="None: the cluster default.")
    artifact_root: str | None = Field(
        default=None, description="The artifact store's URL (s3://, gs://...); pod-local if None."
    )
    operator: bool = Field(default=True, description="Run the GenAIDeployment operator.")
    admin: str = Field(
        default="platform-admin",
        description="The first platform admin (genai init); the operator acts as this user "
        "(it registers deployment revisions in every project).",
    )
    postgres_image: str = POSTGRES_IMAGE
    redis_image: str = REDIS_IMAGE
    chroma_image: str = CHROMA_IMAGE

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except PydanticValidationError as error:
            raise _usage(error, "platform option") from None

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if not _DNS_LABEL.match(value):
            raise ValueError(f"{value!r} is not a namespace name (lower-case DNS label, 63 max)")
        return value

    @field_validator("image", "postgres_image", "redis_image", "chroma_image")
    @classmethod
    def _image(cls, value: str) -> str:
        if not _IMAGE.match(value):
            raise ValueError(f"{value!r} is not an image reference")
        return value

    @field_validator("gateway_cpu", "gateway_memory", "postgres_storage", "chroma_storage")
    @classmethod
    def _quantity(cls, value: str) -> str:
        if not _QUANTITY.match(value):
            raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 500m, 2, 20Gi)")
        return value

    @field_validator("storage_class")
    @classmethod
    def _storage_class(cls, value: str | None) -> str | None:
        if value is not None and not _DNS_SUBDOMAIN.match(value):
            raise ValueError(f"{value!r} is not a StorageClass name")
        return value

    @field_validator("artifact_root")
    @classmethod
    def _artifact_root(cls, value: str | None) -> str | None:
        if value is not None and not _URL.match(value):
            raise ValueError(f"{value!r} is not a URL (s3://bucket/path, gs://..., https://...)")
        return value

    @field_validator("postgres_url", "redis_url", "chroma_url")
    @classmethod
    def _url(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None:
            schemes = _SCHEMES[info.field_name or ""]
            if not value.get_secret_value().startswith(schemes):
                # the value may hold a password: name the schemes, not the value
                raise ValueError(f"the URL must start with one of {', '.join(schemes)}")
        return value

    @field_validator("postgres_url_secret", "redis_url_secret", "chroma_url_secret")
    @classmethod
    def _one_source(cls, value: SecretRef | None, info: ValidationInfo) -> SecretRef | None:
        url_field = (info.field_name or "").removesuffix("_secret")
        if value is not None and info.data.get(url_field) is not None:
            raise ValueError(f"give {url_field} or {info.field_name}, not both")
        return value

    def _url_of(self, service: str) -> SecretStr | None:
        found: SecretStr | None = getattr(self, f"{service}_url")
        return found

    def _ref_of(self, service: str) -> SecretRef | None:
        found: SecretRef | None = getattr(self, f"{service}_url_secret")
        return found

    def managed(self, service: str) -> bool:
        """Whether ``service`` (postgres, redis, chroma) is managed outside the cluster."""
        return self._url_of(service) is not None or self._ref_of(service) is not None

    def url_secret(self, service: str) -> SecretRef:
        """The Secret key a managed service's URL is read from."""
        return self._ref_of(service) or SecretRef(name=PLATFORM_SECRET, key=URL_ENV[service])


def labels(component: str, options: PlatformOptions) -> dict[str, str]:
    del options  # the same labels in every namespace: kept for a future instance label
    return {
        "app.kubernetes.io/name": f"genai-{component}",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "genai",
        "app.kubernetes.io/managed-by": "genai-cli",
    }


def selector(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": f"genai-{component}", "app.kubernetes.io/part-of": "genai"}


def metadata(
    name: str, component: str, options: PlatformOptions, *, namespaced: bool = True
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespaced:
        meta["namespace"] = options.namespace
    meta["labels"] = labels(component, options)
    return meta


def service_host(name: str, options: PlatformOptions) -> str:
    return f"{name}.{options.namespace}.svc.cluster.local"


def pod_security(uid: int) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security(*, read_only: bool) -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": read_only,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def url_env(options: PlatformOptions) -> list[dict[str, Any]]:
    """The variables of the platform's pods that come from Secrets: each managed service's
    URL, and the in-cluster PostgreSQL's password (libpq reads ``PGPASSWORD``)."""
    env: list[dict[str, Any]] = []
    if not options.managed("postgres"):
        ref = {"name": POSTGRES_SECRET, "key": "password"}
        env.append({"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": ref}})
    for service, variable in URL_ENV.items():
        if options.managed(service):
            found = options.url_secret(service)
            ref = {"name": found.name, "key": found.key}
            env.append({"name": variable, "valueFrom": {"secretKeyRef": ref}})
    return env
