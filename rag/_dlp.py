"""DLP redaction before indexing, for knowledge bases created with ``redact=True``.

The project's DLP policy applies (else the platform's ``GENAI_DLP_POLICY`` file, else
the default policy: every entity found is replaced by a typed pseudonym). Pseudonyms are
consistent within a source and kept in no vault: nothing can restore the originals from
the index. An entity the policy blocks fails that source (reported, not indexed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from genai import Client
    from genai.dlp import Detectors
    from rag._ingest import Redact

__all__ = ["project_redactor"]


def project_redactor(
    client: Client, project: str, project_id: int, *, detectors: Detectors | None = None
) -> Redact:
    """The project's redaction of ingested texts; its detectors are kept in ``detectors``."""
    from genai.dlp import Dlp, Policy, effective_policy

    dlp = Dlp.from_settings(client.settings, client.store, detectors=detectors)
    chosen = effective_policy(client, project) or Policy()

    def redact(texts: Sequence[str]) -> list[str]:
        return dlp.redact_texts(texts, chosen, project_id=project_id)

    return redact
