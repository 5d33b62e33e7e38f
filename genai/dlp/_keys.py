"""The DLP key: encryption of vault values, keyed hashes of values and sessions.

One master secret (``GENAI_DLP_KEY``, or ``GENAI_HOME/dlp.key`` made once with mode 0600)
yields, through HKDF, separate keys for each purpose: AES-256-GCM for vault values, and
HMAC-SHA256 keys for the value index, the session ids and the ``hash`` action. Every
gateway process that shares a vault must share the master secret.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genai.errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from genai.settings import Settings

__all__ = ["DlpKeys", "load_keys"]

KEY_FILE = "dlp.key"
_NONCE = 12


def _aesgcm() -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError as error:
        raise MissingDependencyError(
            "cryptography", extra="dlp", purpose="The DLP vault's encryption"
        ) from error
    return AESGCM


def _derive(master: bytes, purpose: str) -> bytes:
    """HKDF-SHA256 (RFC 5869) with an empty salt: one 32-byte key per purpose."""
    prk = hmac.new(b"\x00" * 32, master, hashlib.sha256).digest()
    return hmac.new(prk, f"genai-dlp/{purpose}".encode() + b"\x01", hashlib.sha256).digest()


def _parts(parts: tuple[object, ...]) -> bytes:
    # length-prefixed, so that ("ab", "c") and ("a", "bc") never collide
    out = bytearray()
    for part in parts:
        data = str(part).encode("utf-8")
        out += len(data).to_bytes(4, "big") + data
    return bytes(out)


class DlpKeys:
    """The keys derived from one master secret."""

    def __init__(self, master: bytes) -> None:
        if len(master) < 16:
            raise ConfigError(
                "GENAI_DLP_KEY is too short: use at least 16 characters of random text "
                '(e.g. `python -c "import secrets; print(secrets.token_urlsafe(32))"`)'
            )
        self._enc = _derive(master, "vault-encryption")
        self._macs = {
            purpose: _derive(master, f"mac/{purpose}")
            for purpose in ("value", "session", "hash", "cache")
        }
        self._cipher: Any = None

    def mac(self, purpose: str, *parts: object, size: int = 64) -> str:
        """A keyed hash (hex, ``size`` characters) of ``parts`` for one ``purpose``."""
        digest = hmac.new(self._macs[purpose], _parts(parts), hashlib.sha256).hexdigest()
        return digest[:size]

    def encrypt(self, value: str, *context: object) -> str:
        """``value`` encrypted with AES-256-GCM, bound to ``context`` (which must be given
        again to decrypt): base64 of nonce and ciphertext."""
        if self._cipher is None:
            self._cipher = _aesgcm()(self._enc)
        nonce = os.urandom(_NONCE)
        sealed = self._cipher.encrypt(nonce, value.encode("utf-8"), _parts(context))
        return base64.b64encode(nonce + sealed).decode("ascii")

    def decrypt(self, token: str, *context: object) -> str:
        if self._cipher is None:
            self._cipher = _aesgcm()(self._enc)
        from cryptography.exceptions import InvalidTag

        try:
            raw = base64.b64decode(token.encode("ascii"), validate=True)
            plain = self._cipher.decrypt(raw[:_NONCE], raw[_NONCE:], _parts(context))
        except (InvalidTag, ValueError):
            raise ConfigError(
                "a DLP vault entry cannot be decrypted: it was written under another key or "
                "changed. Give every gateway process the same GENAI_DLP_KEY"
            ) from None
        return plain.decode("utf-8")


def _read_key_file(path: Path) -> bytes:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"the DLP key file {str(path)!r} can be read by other users: run "
            f"`chmod 600 {path}` (or set GENAI_DLP_KEY)"
        )
    text = path.read_text(encoding="ascii").strip()
    try:
        return base64.urlsafe_b64decode(text.encode("ascii"))
    except ValueError:
        raise ConfigError(
            f"the DLP key file {str(path)!r} is damaged: restore it from a backup "
            "(pseudonyms in vaults become unreadable without it)"
        ) from None


def _make_key_file(path: Path) -> None:
    """Write a new random key to ``path`` (mode 0600) unless another process did first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii") + "\n")
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):  # another process made one first: keep it
            os.link(temp, path)  # atomic, and never replaces an existing key
    finally:
        temp.unlink(missing_ok=True)


def load_keys(settings: Settings) -> DlpKeys:
    """The keys of ``GENAI_DLP_KEY``, else of the key file under ``GENAI_HOME`` (made once)."""
    if settings.dlp_key is not None:
        return DlpKeys(settings.dlp_key.get_secret_value().encode("utf-8"))
    path = settings.home / KEY_FILE
    try:
        if not path.exists():
            _make_key_file(path)
        return DlpKeys(_read_key_file(path))
    except OSError as error:
        raise ConfigError(
            f"cannot read or create the DLP key file {str(path)!r} ({error.strerror}): "
            "set GENAI_DLP_KEY, or make GENAI_HOME writable"
        ) from None
