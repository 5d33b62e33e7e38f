"""The few Kubernetes API calls the operator makes, over HTTP (httpx).

Written by hand rather than through the ``kubernetes`` package's generated client: the
operator needs six verbs over a dozen kinds, some of them custom (ServiceMonitor,
ScaledObject) that the generated client has no classes for. Objects are created when
absent and changed by server-side apply (field manager ``genai-operator``, forced: the
operator owns what it renders). Credentials come from the pod's service account in a
cluster, or a kubeconfig (through the ``kubernetes`` package's loader).
"""

from __future__ import annotations

import json
import ssl
from typing import Any

import httpx

from genai.deploy import GROUP, VERSION, ObjectKey, key_of
from genai.errors import BackendError, ConfigError, NotFoundError

__all__ = ["KINDS", "KubeApi", "KubeError"]

#: kind → (apiVersion, plural) for every kind the operator reads or writes.
KINDS: dict[str, tuple[str, str]] = {
    "Deployment": ("apps/v1", "deployments"),
    "Service": ("v1", "services"),
    "HorizontalPodAutoscaler": ("autoscaling/v2", "horizontalpodautoscalers"),
    "ScaledObject": ("keda.sh/v1alpha1", "scaledobjects"),
    "PodDisruptionBudget": ("policy/v1", "poddisruptionbudgets"),
    "ServiceMonitor": ("monitoring.coreos.com/v1", "servicemonitors"),
    "NetworkPolicy": ("networking.k8s.io/v1", "networkpolicies"),
    "ResourceQuota": ("v1", "resourcequotas"),
    "Pod": ("v1", "pods"),
    "Namespace": ("v1", "namespaces"),
    "GenAIDeployment": (f"{GROUP}/{VERSION}", "genaideployments"),
}
FIELD_MANAGER = "genai-operator"


class KubeError(BackendError):
    """The API server refused or failed a call."""


class KubeApi:
    def __init__(
        self,
        server: str,
        *,
        headers: dict[str, str] | None = None,
        verify: ssl.SSLContext | bool = True,
        cert: tuple[str, str] | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.server = server.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.server,
            headers=headers or {},
            verify=verify,
            cert=cert,
            timeout=timeout_s,
        )

    @classmethod
    def from_config(cls, *, kubeconfig: str | None = None, context: str | None = None) -> KubeApi:
        """In a cluster: the pod's service account; else a kubeconfig (``~/.kube/config``)."""
        try:
            from kubernetes import client, config
        except ImportError as error:  # pragma: no cover - the k8s extra
            from genai.errors import MissingDependencyError

            raise MissingDependencyError(
                "kubernetes", extra="k8s", purpose="the GenAIDeployment operator"
            ) from error
        cfg = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        except config.ConfigException:
            try:
                config.load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=kubeconfig, context=context, client_configuration=cfg
                )
            except (config.ConfigException, OSError) as error:
                raise ConfigError(
                    f"no Kubernetes cluster to talk to: not in a pod, and no usable kubeconfig "
                    f"({error}): pass --kubeconfig FILE (and --context), or set KUBECONFIG"
                ) from None
        headers = {}
        token = cfg.api_key.get("authorization") or cfg.api_key.get("BearerToken")
        if token:
            prefix = cfg.api_key_prefix.get("authorization", "Bearer")
            headers["Authorization"] = token if token.startswith(prefix) else f"{prefix} {token}"
        verify: ssl.SSLContext | bool = cfg.verify_ssl
        if cfg.verify_ssl and cfg.ssl_ca_cert:
            verify = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
        cert = (cfg.cert_file, cfg.key_file) if cfg.cert_file and cfg.key_file else None
        return cls(cfg.host, headers=headers, verify=verify, cert=cert)

    async def aclose(self) -> None:
        await self._http.aclose()

    # ---------------------------------------------------------------- paths

    @staticmethod
    def path(api_version: str, kind: str, namespace: str = "", name: str = "") -> str:
        try:
            _, plural = KINDS[kind]
        except KeyError:
            raise NotFoundError(f"kind {kind!r} is not one the operator manages") from None
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        where = f"/namespaces/{namespace}" if namespace else ""
        return f"{base}{where}/{plural}" + (f"/{name}" if name else "")

    # ---------------------------------------------------------------- verbs

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        response = await self._http.get(self.path(api_version, kind, namespace, name))
        if response.status_code == 404:
            return None
        _check(response, f"get {kind} {namespace}/{name}")
        return dict(response.json())

    async def list(
        self, kind: str, namespace: str, labels: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Objects of ``kind`` in ``namespace`` with all of ``labels`` (checked here too: a
        server that ignores the selector still gives the right answer). A kind whose
        resource the cluster lacks (a CRD not installed) has no objects."""
        api_version, _ = KINDS[kind]
        params = {"labelSelector": ",".join(f"{k}={v}" for k, v in (labels or {}).items())}
        response = await self._http.get(self.path(api_version, kind, namespace), params=params)
        if response.status_code == 404:
            return []
        _check(response, f"list {kind} in {namespace}")
        items = response.json().get("items") or []
        wanted = labels or {}
        return [
            item
            for item in items
            if all(
                (item.get("metadata", {}).get("labels") or {}).get(k) == v
                for k, v in wanted.items()
            )
        ]

    async def apply(self, manifest: dict[str, Any]) -> bool:
        """Create ``manifest``, or server-side apply it over the existing object. False when
        the cluster lacks its kind (e.g. no ServiceMonitor CRD): the caller reports it."""
        key = key_of(manifest)
        existing = await self.get(key.api_version, key.kind, key.namespace, key.name)
        if existing is None:
            response = await self._http.post(
                self.path(key.api_version, key.kind, key.namespace), json=manifest
            )
            if response.status_code == 404:
                return False
            if response.status_code != 409:  # created meanwhile: apply over it below
                _check(response, f"create {key.kind} {key.namespace}/{key.name}")
                return True
        response = await self._http.patch(
            self.path(key.api_version, key.kind, key.namespace, key.name),
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
            content=json.dumps(manifest),
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        _check(response, f"apply {key.kind} {key.namespace}/{key.name}")
        return True

    async def delete(self, key: ObjectKey) -> None:
        response = await self._http.delete(
            self.path(key.api_version, key.kind, key.namespace, key.name),
            params={"propagationPolicy": "Background"},
        )
        if response.status_code != 404:
            _check(response, f"delete {key.kind} {key.namespace}/{key.name}")


def _check(response: httpx.Response, what: str) -> None:
    if response.is_success:
        return
    try:
        message = response.json().get("message") or response.text
    except ValueError:
        message = response.text
    raise KubeError(
        f"Kubernetes API: {what}: {response.status_code} {message}"[:500],
        backend="kubernetes",
        status=response.status_code,
        retryable=response.status_code >= 500 or response.status_code == 429,
    )
