"""What the platform's encrypted stores share: a master secret, keys derived from it, and
AES-256-GCM bound to a context.

A master secret comes from a setting (``GENAI_DLP_KEY``, ``GENAI_SECRET_KEY``) or, when that
is unset, from a key file under ``GENAI_HOME`` made once with mode 0600 (every process on the
host shares it; several hosts must share the setting). Each purpose gets its own key through
HKDF, so the DLP vault and the project secrets never share one even if they share a master.
A ciphertext is bound to its context (a project and a name, say): moved to another row, it
no longer decrypts.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from genai.errors import ConfigError, MissingDependencyError

__all__ = ["MasterKey", "Sealer", "check_master", "derive", "encode_parts", "load_master"]

_NONCE = 12
MIN_MASTER = 16


def derive(master: bytes, info: str) -> bytes:
    """HKDF-SHA256 (RFC 5869) with an empty salt: one 32-byte key for ``info``."""
    prk = hmac.new(b"\x00" * 32, master, hashlib.sha256).digest()
    return hmac.new(prk, info.encode() + b"\x01", hashlib.sha256).digest()


def encode_parts(parts: tuple[object, ...]) -> bytes:
    """``parts`` as bytes, length-prefixed so ("ab", "c") and ("a", "bc") never collide."""
    out = bytearray()
    for part in parts:
        data = str(part).encode("utf-8")
        out += len(data).to_bytes(4, "big") + data
    return bytes(out)


def _aesgcm(extra: str, purpose: str) -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError as error:
        raise MissingDependencyError("cryptography", extra=extra, purpose=purpose) from error
    return AESGCM


class Sealer:
    """AES-256-GCM under one derived key: ``seal`` binds a value to a context that ``open``
    must be given again. ``broken`` is the message of the ConfigError a value that does not
    open raises (another key wrote it, or it was changed or moved)."""

    def __init__(self, key: bytes, *, extra: str, purpose: str, broken: str) -> None:
        self._key = key
        self._extra = extra
        self._purpose = purpose
        self._broken = broken
        self._cipher: Any = None

    def _get(self) -> Any:
        if self._cipher is None:
            self._cipher = _aesgcm(self._extra, self._purpose)(self._key)
        return self._cipher

    def seal(self, value: str, *context: object) -> str:
        """Base64 of a random nonce and the ciphertext of ``value``."""
        nonce = os.urandom(_NONCE)
        sealed = self._get().encrypt(nonce, value.encode("utf-8"), encode_parts(context))
        return base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, token: str, *context: object) -> str:
        cipher = self._get()
        from cryptography.exceptions import InvalidTag

        try:
            raw = base64.b64decode(token.encode("ascii"), validate=True)
            plain = cipher.decrypt(raw[:_NONCE], raw[_NONCE:], encode_parts(context))
        except (InvalidTag, ValueError):
            raise ConfigError(self._broken) from None
        return bytes(plain).decode("utf-8")


@dataclass(frozen=True)
class MasterKey:
    """Where one master secret comes from, for the messages that name it."""

    setting: str  # the environment variable, e.g. GENAI_DLP_KEY
    file: str  # the key file's name under GENAI_HOME, e.g. dlp.key
    label: str  # how messages call it, e.g. "DLP key"
    loss: str  # what is lost without it, e.g. "pseudonyms in vaults become unreadable"


def check_master(master: bytes, source: MasterKey) -> bytes:
    if len(master) < MIN_MASTER:
        raise ConfigError(
            f"{source.setting} is too short: use at least {MIN_MASTER} characters of random "
            'text (e.g. `python -c "import secrets; print(secrets.token_urlsafe(32))"`)'
        )
    return master


def load_master(configured: SecretStr | None, home: Path, source: MasterKey) -> bytes:
    """The configured secret, else the key file under ``home`` (made once, mode 0600)."""
    if configured is not None:
        return check_master(configured.get_secret_value().encode("utf-8"), source)
    path = home / source.file
    try:
        if not path.exists():
            _make_key_file(path)
        return check_master(_read_key_file(path, source), source)
    except OSError as error:
        raise ConfigError(
            f"cannot read or create the {source.label} file {str(path)!r} ({error.strerror}): "
            f"set {source.setting}, or make GENAI_HOME writable"
        ) from None


def _read_key_file(path: Path, source: MasterKey) -> bytes:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"the {source.label} file {str(path)!r} can be read by other users: run "
            f"`chmod 600 {path}` (or set {source.setting})"
        )
    text = path.read_text(encoding="ascii").strip()
    try:
        return base64.urlsafe_b64decode(text.encode("ascii"))
    except ValueError:
        raise ConfigError(
            f"the {source.label} file {str(path)!r} is damaged: restore it from a backup "
            f"({source.loss} without it)"
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
