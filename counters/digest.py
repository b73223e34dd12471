"""Keyed digests of identifiers and record keys: what the engine stores instead of personal data.

The digest is identity at rest: two records are linked exactly when the digests of their normalized
identifiers are equal, and a record's key is the digest of its runtime, tenant, provider and user id.
"""

from __future__ import annotations

import hmac
from functools import lru_cache

from counters.sealing import Sealer

DEVELOPMENT_SECRET = b"endusers-development-secret-change-me"
"""The key when none is configured: for tests and development only (the worker refuses to start
without ENDUSERS_SECRET unless ENDUSERS_ENV=development)."""


class Digester:
    """Keyed digests of identifiers and record keys, so no personal data is stored at rest.

    HMAC-SHA256 truncated to 64 bits: collisions within one subscription's million identifiers have a
    probability near 3e-8, and the secret keeps digests from being reversed by a dictionary attack.
    Digests of recent values are memoized: logins repeat the same people over and over.

    Each subscription gets its own key, derived from the secret and its name (:meth:`for_subscription`,
    which :func:`to_change` applies), so one person's digests cannot be linked across licensees.
    ``per_subscription=False`` keeps one key shared by every subscription (ENDUSERS_DIGEST_SCOPE=shared),
    with separator-joined record keys, for state built that way (see :func:`encode_parts`). The
    scoped digesters share one memo, so its bound holds whatever their number.
    """

    __slots__ = ("_secret", "_key", "_keyed", "_cached", "_scoped", "_per_subscription", "_joined", "fingerprint",
                 "sealer")

    def __init__(self, secret: bytes = DEVELOPMENT_SECRET, *, per_subscription: bool = True) -> None:
        self._secret = secret
        self._key = secret
        self._keyed = hmac.new(secret, digestmod="sha256")
        self._cached = lru_cache(maxsize=262_144)(_keyed_digest)
        self._scoped: dict[str, Digester] = {}
        self._per_subscription = per_subscription
        self._joined = not per_subscription
        self.fingerprint = fingerprint(secret, "subscription" if per_subscription else "shared")
        """How these digests are made (:func:`fingerprint`): stored with each commit, checked at load."""
        self.sealer = Sealer(secret)
        """Seals the user ids records keep (:mod:`counters.sealing`): one secret keys both."""

    def __call__(self, *parts: str) -> str:
        return self._cached(self._keyed, parts, self._joined)

    def for_subscription(self, subscription: str) -> Digester:
        """The digester of one subscription: key = HMAC(secret, subscription), memo shared."""
        if not self._per_subscription:
            return self
        scoped = self._scoped.get(subscription)
        if scoped is None:
            scoped = Digester.__new__(Digester)
            scoped._secret, scoped._cached, scoped._scoped = self._secret, self._cached, {}
            scoped.fingerprint = self.fingerprint
            scoped.sealer = self.sealer
            scoped._per_subscription = False  # already scoped: it is its own subscription's digester
            scoped._joined = False
            scoped._key = hmac.digest(self._secret, b"endusers subscription key\x1f" +
                                      subscription.encode("utf-8", "surrogatepass"), "sha256")
            scoped._keyed = hmac.new(scoped._key, digestmod="sha256")
            self._scoped[subscription] = scoped
        return scoped


FINGERPRINT_MESSAGE = b"endusers-digest-fingerprint"


def fingerprint(secret: bytes, scope: str) -> str:
    """``<scope>:<8 hex>``: the digest scope and the first 32 bits of HMAC(secret, a fixed message).

    Enough to tell two secrets apart (a wrong one matches with probability 2^-32), too short and too
    keyed to reveal anything of the secret. A subscription's state records the fingerprint of the
    digests it was built with: a worker configured otherwise would digest the same people differently
    and count each returning one twice, so it refuses the state instead (:class:`DigestMismatch`)."""
    return f"{scope}:{hmac.digest(secret, FINGERPRINT_MESSAGE, 'sha256')[:4].hex()}"


class DigestMismatch(Exception):
    """A subscription's stored state was digested otherwise (another ENDUSERS_DIGEST_SCOPE or
    ENDUSERS_SECRET) than this process would digest its changes: counting it would split people."""

    def __init__(self, subscription: str, stored: str, configured: str) -> None:
        self.subscription, self.stored, self.configured = subscription, stored, configured
        stored_scope, _, stored_key = stored.partition(":")
        scope, _, key = configured.partition(":")
        if stored == UNRECORDED:
            super().__init__(
                f"subscription {subscription!r} has no record of the digests it was counted with: refusing to "
                f"count it, or a worker with another ENDUSERS_SECRET would split every person in two. If this "
                f"worker's settings are the ones it was built with, record them (fingerprint {configured}; "
                f"docs/operations.md, Recovery)")
            return
        what = (f"stored ENDUSERS_DIGEST_SCOPE={stored_scope}, configured {scope}" if stored_scope != scope
                else f"same ENDUSERS_DIGEST_SCOPE={scope} but another ENDUSERS_SECRET "
                     f"(key fingerprint {stored_key} stored, {key} configured)")
        super().__init__(
            f"subscription {subscription!r} was counted with other digests ({what}): refusing to count "
            f"it, or every returning person would count twice. Restart with the settings it was built "
            f"with (docs/operations.md, Recovery)")


UNRECORDED = "none"
"""The stored fingerprint of a state committed before commits recorded one (refused in production)."""


def _keyed_digest(keyed: hmac.HMAC, parts: tuple[str, ...], joined: bool) -> str:
    """HMAC-SHA256 of the parts, from a copy of the HMAC already keyed (``hmac.new(key)``): the copy skips
    hashing the key's two padded blocks, which ``hmac.digest(key, ...)`` would hash again for every
    digest (the digest is the same).
    The memo's entries hold the keyed HMAC, one object per key, so equal keys share entries."""
    mac = keyed.copy()
    mac.update("\x1f".join(parts).encode("utf-8", "surrogatepass") if joined else encode_parts(parts))
    return mac.digest()[:8].hex()


def encode_parts(parts: tuple[str, ...]) -> bytes:
    """The bytes a key of several parts is digested from: each part's UTF-8 length (4 bytes, big
    endian), then the part. Producers may send any character, so joining with a separator would let
    tenant ``a`` + provider ``b\x1fc`` and tenant ``a\x1fb`` + provider ``c`` become one record. A
    single part (an identifier, a session id) is its own encoding: there is nothing to separate.

    Only the shared key (``per_subscription=False``) joins with ``\x1f``: it exists to read state whose
    record keys were digested that way."""
    encoded = [part.encode("utf-8", "surrogatepass") for part in parts]
    if len(encoded) == 1:
        return encoded[0]
    return b"".join(len(part).to_bytes(4, "big") + part for part in encoded)
