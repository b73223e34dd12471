"""The provider's user id of a record, kept sealed (docs/security.md, user ids at rest).

An admin acting on a report (deactivate a dormant user) needs the id their own tools know: the
record key is a digest, which nobody can act on. So a record keeps its tenant and user id encrypted
with AES-SIV (RFC 5297, the ``cryptography`` library), under a key derived by HKDF-SHA256 from the
secret that also keys the digests; the record's key is the associated data, so a sealed id copied
onto another record does not open. Emails and logins stay digests: only this one id is recoverable,
and only by a holder of the secret (the worker serving an admin).

AES-SIV is deterministic: no nonce is stored, which is 12 of the bytes a record costs in Redis
(docs/benchmarks.md). What it reveals is equality of the same plaintext under the same associated
data; the plaintext of a record is the tenant and user id its key is digested from, so the only
equal pairs are the same record sealed twice, which its key already says. Ids sealed by earlier
versions (AES-GCM with a random nonce, format 1) still open; a record is written in this format the
next time an event of it is counted.

The same AEAD seals other documents kept at rest (the gateway's SCIM resources, docs/sources.md):
:meth:`Sealer.seal_bytes` and :meth:`Sealer.open_bytes`, under a key of their own (``purpose``).
"""

from __future__ import annotations

import base64
import os
from functools import lru_cache

import msgpack
import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SEALED_VERSION = b"\x01"
"""The first byte of a document sealed by :meth:`Sealer.seal_bytes`, and of a user id sealed before
format 2: AES-256-GCM, 12-byte random nonce (a user id's plaintext: JSON ``[tenant, user_id]``)."""
SEALED_SIV = b"\x02"
"""The first byte of a user id sealed by :meth:`Sealer.seal`: AES-SIV with 256-bit keys, no nonce,
the 16-byte synthetic IV then the ciphertext of msgpack ``user_id``, or ``[tenant, user_id]`` when the
tenant is not ``UNNAMED``."""
UNNAMED = "default"
"""The runtime, tenant or provider of an event that names none (``schemas.events.ScopeName``): the
common case, so at rest it is left out rather than repeated in every record."""
_NONCE = 12
_TAG = 16


class Sealer:
    """Seals and opens ``(tenant, user_id)`` of a record. Sealing is memoized per record: the same
    people log in over and over, and one sealed copy per record is all a state keeps."""

    __slots__ = ("_aead", "_siv", "_sealed")

    def __init__(self, secret: bytes, purpose: bytes = b"endusers user id sealing v1") -> None:
        """``purpose`` is the HKDF info: each kind of sealed document has a key of its own, and the
        deterministic format a key of its own again (one key, one algorithm)."""
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret)
        self._aead = AESGCM(key)
        siv = HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=purpose + b" siv").derive(secret)
        self._siv = AESSIV(siv)
        self._sealed = lru_cache(maxsize=65_536)(self._seal)

    def seal(self, record: str, tenant: str, user_id: str) -> str:
        """The sealed ``(tenant, user_id)`` of record digest ``record``, in base64 (the form a change
        carries it in; a record keeps the bytes, :func:`unwrap`)."""
        return self._sealed(record, tenant, user_id)

    def _seal(self, record: str, tenant: str, user_id: str) -> str:
        plain = msgpack.packb(user_id if tenant == UNNAMED else [tenant, user_id])
        return base64.b64encode(SEALED_SIV + self._siv.encrypt(plain, [record.encode()])).decode()

    def seal_bytes(self, associated: bytes, plain: bytes) -> bytes:
        """``plain`` sealed (format byte, random nonce, ciphertext and tag), bound to ``associated``:
        it opens only with the same associated data (the key it is stored under)."""
        nonce = os.urandom(_NONCE)
        return SEALED_VERSION + nonce + self._aead.encrypt(nonce, plain, associated)

    def open_bytes(self, associated: bytes, sealed: bytes) -> bytes | None:
        """What :meth:`seal_bytes` sealed, or None under another secret, other associated data or an
        unknown format."""
        if sealed[:1] != SEALED_VERSION or len(sealed) < 1 + _NONCE + _TAG:
            return None
        try:
            return self._aead.decrypt(sealed[1:1 + _NONCE], sealed[1 + _NONCE:], associated)
        except InvalidTag:
            return None

    def open(self, record: str, sealed: bytes) -> tuple[str, str] | None:
        """``(tenant, user_id)``, or None when the id was sealed under another secret or for another
        record, or in a format this version does not know."""
        if sealed[:1] != SEALED_SIV:
            plain = self.open_bytes(record.encode(), sealed)
            return None if plain is None else _pair(orjson.loads(plain))
        if len(sealed) < 1 + _TAG:
            return None
        try:
            plain = self._siv.decrypt(sealed[1:], [record.encode()])
        except InvalidTag:
            return None
        return _pair(msgpack.unpackb(plain))


def _pair(opened: object) -> tuple[str, str]:
    """``(tenant, user_id)`` of an opened plaintext: a lone user id is of the ``UNNAMED`` tenant."""
    if isinstance(opened, list):
        return str(opened[0]), str(opened[1])
    return UNNAMED, str(opened)


def unwrap(text: object) -> bytes | None:
    """The sealed bytes of a change's ``user`` field, None when it is not base64 (a change from a
    producer of changes that is not ingest: the record then simply keeps no id)."""
    if not isinstance(text, str):
        return None
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        return None
