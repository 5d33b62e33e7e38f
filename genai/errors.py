"""The error tree of genai-platform.

Every error the platform raises on purpose is a :class:`GenAIError`::

    GenAIError
    ├── UsageError                 the caller's mistake; fix the call, the config or the input
    │   ├── ConfigError            a setting is missing or malformed
    │   ├── ValidationError        an argument or a document is malformed
    │   ├── MissingDependencyError an optional extra is not installed
    │   ├── UnknownBackendError    a backend name that is not registered
    │   └── PayloadTooLarge        a request body over the configured limit
    ├── NotFoundError              the thing does not exist (or the caller may not know it does)
    ├── ConflictError              the thing exists already, or changed under the caller
    ├── PermissionDenied
    │   ├── AuthenticationError    no identity, or a bad / expired / revoked key
    │   ├── Forbidden              the identity's role lacks the permission
    │   └── QuotaExceeded          a project quota or rate limit is used up (carries retry_after)
    ├── PolicyViolation            a platform policy refuses the request
    │   ├── DlpBlocked
    │   └── LicenseNotAllowed
    └── BackendError               an upstream or storage failure (carries backend, status,
        ├── StoreUnavailable       retryable, retry_after)
        └── ArtifactIntegrityError

Messages say what went wrong, the offending value, and what to do about it. The HTTP layer
maps the tree to status codes in one place (:data:`HTTP_STATUS`); the CLI prints one line.
"""

from __future__ import annotations

__all__ = [
    "HTTP_STATUS",
    "ArtifactIntegrityError",
    "AuthenticationError",
    "BackendError",
    "ConfigError",
    "ConflictError",
    "DlpBlocked",
    "Forbidden",
    "GenAIError",
    "LicenseNotAllowed",
    "MissingDependencyError",
    "NotFoundError",
    "PayloadTooLarge",
    "PermissionDenied",
    "PolicyViolation",
    "QuotaExceeded",
    "StoreUnavailable",
    "UnknownBackendError",
    "UsageError",
    "ValidationError",
    "error_body",
    "http_headers",
    "http_status",
]


class GenAIError(Exception):
    """Base class of every error the platform raises on purpose."""

    code = "genai_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(GenAIError):
    code = "invalid_request"


class ConfigError(UsageError):
    code = "config_error"


class ValidationError(UsageError):
    code = "invalid_request"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class MissingDependencyError(UsageError):
    code = "missing_dependency"

    def __init__(self, package: str, *, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the Python package {package!r}, which is not installed: "
            f"run `pip install 'genai-platform[{extra}]'`"
        )
        self.package = package
        self.extra = extra


class UnknownBackendError(UsageError):
    code = "unknown_backend"

    def __init__(self, family: str, name: str, known: list[str]) -> None:
        names = ", ".join(sorted(known)) or "(none registered)"
        super().__init__(f"unknown {family} backend {name!r}; known backends: {names}")
        self.name = name
        self.known = sorted(known)


class PayloadTooLarge(UsageError):
    code = "payload_too_large"


class NotFoundError(GenAIError):
    code = "not_found"


class ConflictError(GenAIError):
    code = "conflict"


class PermissionDenied(GenAIError):
    code = "permission_denied"


class AuthenticationError(PermissionDenied):
    code = "invalid_api_key"


class Forbidden(PermissionDenied):
    code = "forbidden"


class QuotaExceeded(PermissionDenied):
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PolicyViolation(GenAIError):
    code = "policy_violation"


class DlpBlocked(PolicyViolation):
    code = "dlp_blocked"


class LicenseNotAllowed(PolicyViolation):
    code = "license_not_allowed"


class BackendError(GenAIError):
    code = "backend_error"

    def __init__(
        self,
        message: str,
        *,
        backend: str,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.backend = backend
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


class StoreUnavailable(BackendError):
    code = "store_unavailable"

    def __init__(self, message: str) -> None:
        super().__init__(message, backend="database", retryable=True)


class ArtifactIntegrityError(BackendError):
    code = "artifact_corrupted"

    def __init__(self, message: str) -> None:
        super().__init__(message, backend="artifacts", retryable=False)


#: HTTP status for each branch of the tree; the most specific class wins.
HTTP_STATUS: dict[type[GenAIError], int] = {
    GenAIError: 500,
    UsageError: 400,
    PayloadTooLarge: 413,
    NotFoundError: 404,
    ConflictError: 409,
    PermissionDenied: 403,
    AuthenticationError: 401,
    Forbidden: 403,
    QuotaExceeded: 429,
    PolicyViolation: 400,
    BackendError: 502,
    StoreUnavailable: 503,
}


def http_status(error: GenAIError) -> int:
    """The HTTP status code for ``error``: the entry of its nearest class in the tree; a
    :class:`BackendError` that names a gateway status (502, 503, 504) keeps it."""
    if isinstance(error, BackendError) and error.status in (502, 503, 504):
        return error.status
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500


def http_headers(error: GenAIError) -> dict[str, str]:
    """The headers an HTTP answer of ``error`` carries: ``retry-after`` (whole seconds, at
    least 1) when the error says when to retry."""
    retry_after = getattr(error, "retry_after", None)
    if retry_after is None:
        return {}
    return {"retry-after": str(max(1, int(retry_after + 0.999)))}


_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def error_body(error: GenAIError) -> dict[str, dict[str, object]]:
    """The OpenAI-style error body for ``error``: ``{"error": {message, type, param, code}}``."""
    status = http_status(error)
    kind = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {
        "error": {
            "message": error.message,
            "type": kind,
            "param": getattr(error, "field", None),
            "code": error.code,
        }
    }
