"""Calling OpenAI-compatible upstreams: one keep-alive connection pool for every target.

The bearer key is resolved by the caller (:mod:`genai.gateway._credentials`, per request's
project) and passed in: nothing here reads the gateway's environment.
"""

from __future__ import annotations

import email.utils
import time

import aiohttp

from genai.gateway._spec import TargetSpec
from genai.store import mask_url

__all__ = ["UpstreamError", "Upstreams", "endpoint_url"]

_PATHS = {
    "chat": "/chat/completions",
    "completions": "/completions",
    "embeddings": "/embeddings",
    "responses": "/responses",  # targets that speak the Responses API (_responses_wire.py)
}


class UpstreamError(Exception):
    """A target failed. ``retryable``: worth another try (connection, timeout, 429, 5xx)."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        body: bytes = b"",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status
        self.body = body
        self.retry_after = retry_after


def endpoint_url(target: TargetSpec, endpoint: str) -> str:
    assert target.url is not None
    base = target.url.rstrip("/")
    if not base.endswith("/v1"):
        base += "/v1"
    return base + _PATHS[endpoint]


class Upstreams:
    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60)
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=True)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(
        self, target: TargetSpec, endpoint: str, body: bytes, *, api_key: str | None = None
    ) -> bytes:
        """A whole (non-streamed) answer, or :class:`UpstreamError`."""
        url = endpoint_url(target, endpoint)
        timeout = aiohttp.ClientTimeout(total=target.timeout_s)
        try:
            async with self._require().post(
                url, data=body, headers=_headers(api_key), timeout=timeout
            ) as response:
                data = await response.read()
                if response.status >= 400:
                    raise _status_error(target, response, data)
                return data
        except TimeoutError:
            raise UpstreamError(
                f"{target.name} timed out after {target.timeout_s:g} s", retryable=True
            ) from None
        except aiohttp.ClientError as error:
            raise UpstreamError(
                f"{target.name} failed: {_describe(error, url)}", retryable=True
            ) from None

    async def open_stream(
        self, target: TargetSpec, endpoint: str, body: bytes, *, api_key: str | None = None
    ) -> aiohttp.ClientResponse:
        """An answer whose status is 200 and whose body is still to be read (SSE)."""
        url = endpoint_url(target, endpoint)
        # no total limit for a stream: the target's timeout applies to each wait for bytes
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=target.timeout_s, sock_read=target.timeout_s
        )
        try:
            response = await self._require().post(
                url, data=body, headers=_headers(api_key), timeout=timeout
            )
        except TimeoutError:
            raise UpstreamError(
                f"{target.name} timed out after {target.timeout_s:g} s", retryable=True
            ) from None
        except aiohttp.ClientError as error:
            raise UpstreamError(
                f"{target.name} failed: {_describe(error, url)}", retryable=True
            ) from None
        if response.status >= 400:
            data = await response.read()
            response.release()
            raise _status_error(target, response, data)
        return response

    def _require(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("Upstreams.start() was not called")
        return self._session


def _headers(api_key: str | None) -> dict[str, str]:
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    return headers


def _status_error(
    target: TargetSpec, response: aiohttp.ClientResponse, data: bytes
) -> UpstreamError:
    status = response.status
    retryable = status in (408, 429) or status >= 500
    return UpstreamError(
        f"{target.name} answered HTTP {status}",
        retryable=retryable,
        status=status,
        body=data,
        retry_after=_retry_after(response.headers.get("retry-after")),
    )


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, parsed.timestamp() - time.time())


def _describe(error: Exception, url: str) -> str:
    text = str(error) or type(error).__name__
    return mask_url(text.replace(url, mask_url(url)))
