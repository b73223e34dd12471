"""Who may read what over HTTP: bearer tokens with a role and a scope, a Host allow-list, security headers.

Tokens live in the file named by ``ENDUSERS_API_TOKENS_FILE``, one per line as ``sha256-hex role scope``
(``role`` is ``viewer``, ``admin`` or ``source``; ``scope`` is ``*`` or ``acme,globex``). A ``source`` token
writes events through the gateway (``streams/gateway``) and reads nothing: the workers refuse it, except
on the admission check (:data:`SOURCE_PATHS`). Only the hashes are stored,
so the file itself grants nothing to whoever reads it. The file is re-read when it changes, so a token
made with ``endusers token create`` works without a restart, and a line deleted revokes it.

Without the file every request gets :data:`FULL_ACCESS` (no tokens, nothing to check); a production
worker starts that way only with ``ENDUSERS_WEB_AUTH=none`` (``WorkerSettings.web_tokens_file``), and says
so in its log when it listens on something other than a loopback address. A file that cannot be read or
holds no valid token stops the worker at start (:func:`check_token_file`): an operator who configured
tokens meant them, and a worker nobody can read is a mistake to report, not to run with.

The dashboard's page and its static assets are served to everyone: they carry no data, and a browser
cannot send a header when it navigates. Every data path needs a token; ``/healthz`` and ``/readyz``
stay open for orchestrators and load balancers.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import re
import secrets
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson
from aiohttp import web

from streams.settings import WebAuth, WorkerSettings

log = logging.getLogger(__name__)

Role = Literal["viewer", "admin", "source"]
ROLES: tuple[Role, ...] = ("viewer", "admin", "source")
READERS: tuple[Role, ...] = ("viewer", "admin")
"""The roles a worker's HTTP API serves: a ``source`` token may write events, never read them (it may
ask the admission check, which says whether one more person would count, never who counts)."""

SOURCE_PATHS = re.compile(r"/api/v1/subscriptions/[^/]+/admission")
"""The paths a worker serves to ``source`` tokens too: the admission check, which a registration flow
calls with the token it writes events with (the view asks :func:`require` for ``source`` or ``admin``)."""

PROBES = frozenset({"/healthz", "/readyz"})
"""Answered whatever the Host: they reveal only up/down, and orchestrators probe by address
(a kubelet sends the pod's IP as Host)."""
PUBLIC_PATHS = PROBES | {"/"}
"""Served without a token: probes, and the dashboard shell (which then asks for a token)."""
PUBLIC_PREFIXES = ("/static/",)

VIEWER_SETTINGS = ("platform", "capacity", "thresholds", "hysteresis")
"""The settings a viewer sees: what a count is measured against. Owned domains and runtime versions
describe the organisation and stay with admins."""

ADMIN_COUNTS = ("external_domains",)
"""Parts of a counts document only admins see: the email domains of external users describe the
organisation's partners, like owned domains do."""

SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Server": "endusers",
}
"""On every response, errors and the event stream included. ``Server`` carries no version."""


@dataclass(frozen=True, slots=True)
class Grant:
    """What one token allows: a role and the subscriptions it may see (None: all of them)."""

    role: Role
    scope: frozenset[str] | None

    @property
    def admin(self) -> bool:
        return self.role == "admin"

    @property
    def everything(self) -> bool:
        return self.scope is None

    def sees(self, subscription: str) -> bool:
        return self.scope is None or subscription in self.scope

    def visible(self, subscriptions: Iterable[str]) -> list[str]:
        return [s for s in subscriptions if self.sees(s)]

    def settings(self, settings: dict[str, Any] | None) -> dict[str, Any] | None:
        """Settings as this grant may see them: all for an admin, :data:`VIEWER_SETTINGS` for a viewer."""
        if settings is None or self.admin:
            return settings
        return {k: v for k, v in settings.items() if k in VIEWER_SETTINGS}

    def counts(self, counts: dict[str, Any]) -> dict[str, Any]:
        """A counts document as this grant may see it: without :data:`ADMIN_COUNTS` for a viewer."""
        if self.admin:
            return counts
        return {k: v for k, v in counts.items() if k not in ADMIN_COUNTS}


FULL_ACCESS = Grant("admin", None)
"""Every request's grant when no token file is configured."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_scope(text: str) -> frozenset[str] | None:
    text = text.strip()
    if text == "*":
        return None
    names = frozenset(part.strip() for part in text.split(",") if part.strip())
    if not names:
        raise ValueError("scope must be '*' or a comma-separated list of subscriptions")
    return names


def format_scope(scope: frozenset[str] | None) -> str:
    return "*" if scope is None else ",".join(sorted(scope))


class TokenFileError(RuntimeError):
    """The token file named by ENDUSERS_API_TOKENS_FILE cannot be read or holds no valid token."""


def check_token_file(path: str | Path) -> int:
    """The number of valid tokens in ``path``; :class:`TokenFileError` when it cannot be read or holds
    none (an empty file, only blanks or comments, or only bad lines)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise TokenFileError(f"ENDUSERS_API_TOKENS_FILE={str(path)!r} cannot be read: {reason}") from None
    count = len(list(parse_token_lines(lines, source=str(path))))
    if not count:
        raise TokenFileError(f"ENDUSERS_API_TOKENS_FILE={str(path)!r} holds no valid token: create one with "
                             "'endusers token create' (docs/security.md)")
    return count


OPEN_WARNINGS = {
    "worker": "the HTTP API is OPEN (%s): every request is served as an admin of every subscription. "
              "Keep the port on a private network or set ENDUSERS_API_TOKENS_FILE.",
    "gateway": "the gateway is OPEN (%s): anyone who reaches it writes events for every subscription. "
               "Keep the port on a private network or set ENDUSERS_API_TOKENS_FILE.",
}
"""What each server logs when it starts without tokens: what an open server lets anyone do."""


def tokens_file_checked(settings: WorkerSettings, server: Literal["worker", "gateway"] = "worker", *,
                        quiet: bool = False) -> str | None:
    """The token file a server (a worker's HTTP API or the gateway) checks, found readable and holding a
    token; None for an open server, said loudly unless ``quiet``. Raises :class:`OpenApi` (from the
    settings) or :class:`TokenFileError` when the server must not start: the same rules for both, so
    neither can be left open by a setting the other refuses (docs/security.md)."""
    path = settings.web_tokens_file()
    if path is not None:
        check_token_file(path)
        return path
    if not quiet:
        why = "ENDUSERS_WEB_AUTH=none" if settings.web_auth == WebAuth.NONE else \
            "ENDUSERS_ENV=development without ENDUSERS_API_TOKENS_FILE"
        log.warning(OPEN_WARNINGS[server], why)
    return None


_UNREADABLE = (-1, -1)


class TokenFile:
    """The token hashes of ``path``, re-read whenever the file's modification time or size changes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._entries: list[tuple[bytes, Grant]] = []

    def _fresh(self) -> list[tuple[bytes, Grant]]:
        try:
            stat = self.path.stat()
        except OSError as exc:  # a missing file grants nothing (never everything); said once per outage
            if self._stamp != _UNREADABLE:
                log.warning("cannot read the token file %s: %s; no token is accepted", self.path, exc.strerror)
            self._stamp, self._entries = _UNREADABLE, []
            return self._entries
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._entries = list(parse_token_lines(self.path.read_text(encoding="utf-8").splitlines(),
                                                   source=str(self.path)))
            self._stamp = stamp
        return self._entries

    def lookup(self, token: str) -> Grant | None:
        """The grant of ``token``, comparing its hash with every entry in constant time."""
        digest = hash_token(token).encode()
        found: Grant | None = None
        for stored, grant in self._fresh():
            if hmac.compare_digest(digest, stored) and found is None:  # no early exit
                found = grant
        return found


def parse_token_lines(lines: Iterable[str], source: str = "tokens") -> Iterable[tuple[bytes, Grant]]:
    """``(hash, grant)`` per valid line; a bad line is logged and skipped (never widens access)."""
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parsed = _token_line(text)
        if isinstance(parsed, str):
            log.warning("%s:%d: ignored: %s", source, number, parsed)
            continue
        yield parsed


def _token_line(text: str) -> tuple[bytes, Grant] | str:
    """The hash and grant of a line ``sha256 role scope``, or why it is not one."""
    parts = text.split()
    if len(parts) != 3:
        return "expected 'sha256 role scope'"
    digest, role, scope = parts
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
        return "the first column must be a SHA-256 hex digest"
    if role not in ROLES:
        return f"role must be one of {', '.join(ROLES)}"
    try:
        return digest.lower().encode(), Grant(role, parse_scope(scope))
    except ValueError as exc:
        return str(exc)


def create_token(path: str | Path, role: str, scope: frozenset[str] | None) -> str:
    """A new random token; its hash is appended to ``path`` (created owner-readable only)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    token = secrets.token_urlsafe(32)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(descriptor, "a", encoding="utf-8") as handle:
        handle.write(f"{hash_token(token)} {role} {format_scope(scope)}\n")
    return token


def _loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_allowed_hosts(bind: str) -> frozenset[str]:
    """The bind address, ``localhost`` and the loopback addresses; for a wildcard bind also this
    machine's names and the addresses they resolve to (a pod's IP, which Prometheus scrapes by);
    ``ENDUSERS_WEB_ALLOWED_HOSTS`` adds the names clients really use (a proxy's, a Service's)."""
    hosts = {"localhost", "127.0.0.1", "::1"}
    if bind in ("0.0.0.0", "::", ""):
        names = {socket.gethostname(), socket.getfqdn()}
        hosts |= names
        for name in names:
            try:
                hosts |= {str(info[4][0]) for info in socket.getaddrinfo(name, None)}
            except OSError:
                pass
    else:
        hosts.add(bind)
    return frozenset(h.lower() for h in hosts if h)


def request_host(header: str) -> str:
    """``Host`` without its port: ``example.com:6066`` -> ``example.com``, ``[::1]:6066`` -> ``::1``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


@dataclass
class Access:
    """The HTTP access policy of one server."""

    tokens: TokenFile | None = None
    allowed_hosts: frozenset[str] | None = field(default_factory=lambda: default_allowed_hosts("127.0.0.1"))
    """None: any Host (only for servers that are not reachable from a browser)."""
    roles: tuple[Role, ...] = READERS
    """The roles this server serves; a valid token of another role is refused (403), and on a public
    path it counts as no token."""

    @classmethod
    def configured(cls, bind: str, tokens_file: str = "", allowed_hosts: str = "",
                   roles: tuple[Role, ...] = READERS) -> Access:
        """The policy of a server bound to ``bind``, from the settings ``ENDUSERS_API_TOKENS_FILE``
        (``tokens_file``) and ``ENDUSERS_WEB_ALLOWED_HOSTS`` (``allowed_hosts``)."""
        path, hosts = tokens_file.strip(), allowed_hosts.strip()
        # added to the defaults, not instead of them: listing a proxy's name must not lock out the
        # pod's IP (Prometheus scrapes by it) or localhost (kubectl port-forward)
        allowed = default_allowed_hosts(bind) | {h.strip().lower() for h in hosts.split(",") if h.strip()}
        access = cls(TokenFile(path) if path else None, None if hosts == "*" else allowed, roles)
        if access.tokens is None and not _loopback(bind):
            log.warning("ENDUSERS_API_TOKENS_FILE is not set and the web server listens on %s: anyone who "
                        "reaches it reads every subscription. Create tokens with 'endusers token create'.", bind)
        return access

    def grant(self, request: web.Request) -> Grant | None:
        """The request's grant; None when it carries no valid token."""
        if self.tokens is None:
            return FULL_ACCESS
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self.tokens.lookup(token.strip())

    def install(self, app: web.Application) -> None:
        """Register the middleware and the header hook on an application that has not started."""
        app.middlewares.append(self.middleware)
        app.on_response_prepare.append(_security_headers)

    @web.middleware
    async def middleware(self, request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if (self.allowed_hosts is not None and request.path not in PROBES
                and request_host(request.host) not in self.allowed_hosts):
            # DNS rebinding: a page of another site resolved to this address. Name the header, not the policy.
            return _error(421, "this server does not answer to that Host name (ENDUSERS_WEB_ALLOWED_HOSTS)")
        path = request.path
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            # no token needed; one that is sent still counts (/readyz tells a holder more)
            grant = FULL_ACCESS if self.tokens is None else self.grant(request)
            request[GRANT] = grant if grant is None or grant.role in self.roles else None
            return await handler(request)
        grant = self.grant(request)
        if grant is None:
            response = _error(401, "a valid token is required: Authorization: Bearer <token>")
            response.headers["WWW-Authenticate"] = 'Bearer realm="endusers"'
            return response
        if grant.role not in self.roles and not (grant.role == "source" and SOURCE_PATHS.fullmatch(path)):
            return _error(403, f"a {grant.role} token is not served here (this server serves "
                               f"{' and '.join(self.roles)} tokens)")
        request[GRANT] = grant
        return await handler(request)


GRANT: web.RequestKey[Grant | None] = web.RequestKey("endusers.grant")
"""Where the middleware leaves the request's :class:`Grant` (None: a public path, no token checked)."""


def grant_of(request: web.Request) -> Grant:
    """The grant the middleware found; full access on an application without the middleware."""
    grant = request[GRANT] if GRANT in request else FULL_ACCESS
    if grant is None:
        raise _forbidden("a valid token is required")
    return grant


def optional_grant(request: web.Request) -> Grant | None:
    """The grant of a public path's request: None when it carries no valid token."""
    return request[GRANT] if GRANT in request else FULL_ACCESS


def require(request: web.Request, subscription: str | None = None, *, admin: bool = False,
            everything: bool = False, roles: tuple[Role, ...] | None = None) -> Grant:
    """The request's grant, or raise 403 when it may not see ``subscription``, is no admin although
    ``admin`` is asked, is of none of ``roles`` when they are given, or does not cover every
    subscription although ``everything`` is asked."""
    grant = grant_of(request)
    if subscription is not None and not grant.sees(subscription):
        raise _forbidden(f"this token's scope does not include {subscription!r}")
    if admin and not grant.admin:
        raise _forbidden("this needs an admin token")
    if roles is not None and grant.role not in roles:
        raise _forbidden(f"this needs a {' or '.join(roles)} token")
    if everything and not grant.everything:
        raise _forbidden("this needs a token whose scope is '*'")
    return grant


def stream_view(grant: Grant, data: dict[str, Any]) -> dict[str, Any]:
    """A dashboard stream message as ``grant`` may see it: its subscriptions only, settings trimmed."""
    if grant is FULL_ACCESS or "subscriptions" not in data:
        return data
    visible = {}
    for name, entry in data["subscriptions"].items():
        if grant.sees(name):
            entry = grant.counts(entry)
            visible[name] = {**entry, "settings": grant.settings(entry.get("settings"))} if "settings" in entry else entry
    return {**data, "subscriptions": visible}


def _error(status: int, message: str) -> web.Response:
    return web.Response(body=orjson.dumps({"error": message}), status=status, content_type="application/json",
                        headers={"Cache-Control": "no-cache"})


def _forbidden(message: str) -> web.HTTPForbidden:
    return web.HTTPForbidden(body=orjson.dumps({"error": message}), content_type="application/json")


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)
