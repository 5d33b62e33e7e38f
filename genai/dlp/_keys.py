"""The DLP key: encryption of vault values, keyed hashes of values and sessions.

One master secret (``GENAI_DLP_KEY``, or ``GENAI_HOME/dlp.key`` made once with mode 0600)
yields, through HKDF, separate keys for each purpose: AES-256-GCM for vault values, and
HMAC-SHA256 keys for the value index, the session ids and the ``hash`` action. Every
gateway process that shares a vault must share the master secret. The key file and the
cipher are :mod:`genai._crypto`'s, shared with the project secrets (which have their own
master).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING

from genai._crypto import MasterKey, Sealer, check_master, derive, encode_parts, load_master

if TYPE_CHECKING:
    from genai.settings import Settings

__all__ = ["DlpKeys", "load_keys"]

KEY_FILE = "dlp.key"
_SOURCE = MasterKey(
    setting="GENAI_DLP_KEY",
    file=KEY_FILE,
    label="DLP key",
    loss="pseudonyms in vaults become unreadable",
)


def _derive(master: bytes, purpose: str) -> bytes:
    return derive(master, f"genai-dlp/{purpose}")


class DlpKeys:
    """The keys derived from one master secret."""

    def __init__(self, master: bytes) -> None:
        check_master(master, _SOURCE)
        self._sealer = Sealer(
            _derive(master, "vault-encryption"),
            extra="dlp",
            purpose="The DLP vault's encryption",
            broken="a DLP vault entry cannot be decrypted: it was written under another key "
            "or changed. Give every gateway process the same GENAI_DLP_KEY",
        )
        self._macs = {
            purpose: _derive(master, f"mac/{purpose}")
            for purpose in ("value", "session", "hash", "cache")
        }

    def mac(self, purpose: str, *parts: object, size: int = 64) -> str:
        """A keyed hash (hex, ``size`` characters) of ``parts`` for one ``purpose``."""
        digest = hmac.new(self._macs[purpose], encode_parts(parts), hashlib.sha256).hexdigest()
        return digest[:size]

    def encrypt(self, value: str, *context: object) -> str:
        """``value`` encrypted with AES-256-GCM, bound to ``context`` (which must be given
        again to decrypt): base64 of nonce and ciphertext."""
        return self._sealer.seal(value, *context)

    def decrypt(self, token: str, *context: object) -> str:
        return self._sealer.open(token, *context)


def load_keys(settings: Settings) -> DlpKeys:
    """The keys of ``GENAI_DLP_KEY``, else of the key file under ``GENAI_HOME`` (made once)."""
    return DlpKeys(load_master(settings.dlp_key, settings.home, _SOURCE))
