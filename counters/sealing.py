"""The provider's user id of a record, kept sealed (docs/security.md, user ids at rest).

An admin acting on a report (deactivate a dormant user) needs the id their own tools know: the
record key is a digest, which nobody can act on. So a record keeps its tenant and user id encrypted
with AES-GCM (the ``cryptography`` library), under a key derived by HKDF-SHA256 from the secret that
also keys the digests; the record's key is the associated data, so a sealed id copied onto another
record does not open. Emails and logins stay digests: only this one id is recoverable, and only by a
holder of the secret (the worker serving an admin).

The same AEAD seals other documents kept at rest (the gateway's SCIM resources, docs/sources.md):
:meth:`Sealer.seal_bytes` and :meth:`Sealer.open_bytes`, under a key of their own (``purpose``).
"""

from __future__ import annotations

import base64
import os
from functools import lru_cache

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SEALED_VERSION = b"\x01"
"""The first byte of a sealed id: the format (AES-256-GCM, 12-byte random nonce, JSON ``[tenant, user_id]``)."""
_NONCE = 12


class Sealer:
    """Seals and opens ``(tenant, user_id)`` of a record. Sealing is memoized per record: the same
    people log in over and over, and one sealed copy per record is all a state keeps."""

    __slots__ = ("_aead", "_sealed")

    def __init__(self, secret: bytes, purpose: bytes = b"endusers user id sealing v1") -> None:
        """``purpose`` is the HKDF info: each kind of sealed document has a key of its own."""
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret)
        self._aead = AESGCM(key)
        self._sealed = lru_cache(maxsize=65_536)(self._seal)

    def seal(self, record: str, tenant: str, user_id: str) -> str:
        """The sealed ``(tenant, user_id)`` of record digest ``record``, in base64 (the form a change
        carries it in; a record keeps the bytes, :func:`unwrap`)."""
        return self._sealed(record, tenant, user_id)

    def _seal(self, record: str, tenant: str, user_id: str) -> str:
        return base64.b64encode(self.seal_bytes(record.encode(), orjson.dumps([tenant, user_id]))).decode()

    def seal_bytes(self, associated: bytes, plain: bytes) -> bytes:
        """``plain`` sealed (format byte, random nonce, ciphertext and tag), bound to ``associated``:
        it opens only with the same associated data (the key it is stored under)."""
        nonce = os.urandom(_NONCE)
        return SEALED_VERSION + nonce + self._aead.encrypt(nonce, plain, associated)

    def open_bytes(self, associated: bytes, sealed: bytes) -> bytes | None:
        """What :meth:`seal_bytes` sealed, or None under another secret, other associated data or an
        unknown format."""
        if sealed[:1] != SEALED_VERSION or len(sealed) < 1 + _NONCE + 16:
            return None
        try:
            return self._aead.decrypt(sealed[1:1 + _NONCE], sealed[1 + _NONCE:], associated)
        except InvalidTag:
            return None

    def open(self, record: str, sealed: bytes) -> tuple[str, str] | None:
        """``(tenant, user_id)``, or None when the id was sealed under another secret or for another
        record, or in a format this version does not know."""
        plain = self.open_bytes(record.encode(), sealed)
        if plain is None:
            return None
        tenant, user_id = orjson.loads(plain)
        return str(tenant), str(user_id)


def unwrap(text: object) -> bytes | None:
    """The sealed bytes of a change's ``user`` field, None when it is not base64 (a change from a
    producer of changes that is not ingest: the record then simply keeps no id)."""
    if not isinstance(text, str):
        return None
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        return None
