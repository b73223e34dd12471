"""How a command ends when it cannot do its work: one line on stderr saying what failed, where and
what to do, and an exit status a script can tell apart (docs/cli.md, exit statuses). Every command
goes through :func:`failure`, so a service that is down reads the same whichever command met it.
"""

from __future__ import annotations

from enum import IntEnum

from counters import StoreUnavailable
from streams.kafka.errors import BrokerUnavailable
from streams.settings import MissingSecret, SettingsError, WorkerSettings, describe


class Status(IntEnum):
    """The exit statuses of every command."""

    DONE = 0
    INVALID = 1
    """Invalid input: a line or row rejected (nothing of it sent), an unknown subscription."""
    USAGE = 2
    """The command cannot run as given: click's own usage errors, a wrong setting, a file that cannot
    be read or written."""
    UNAVAILABLE = 3
    """Redis or Kafka could not be reached, or refused the request."""


SERVICES: dict[type[Exception], tuple[str, str]] = {
    StoreUnavailable: ("Redis", "ENDUSERS_REDIS"),
    BrokerUnavailable: ("Kafka", "ENDUSERS_KAFKA"),
}
"""The exception each service's client is translated to, the service's name and the setting that
chooses its address."""

HINT = "deploy/local/services up"
"""What starts both services on this machine (docs/operations.md)."""


def failure(exc: BaseException) -> tuple[Status, list[str]] | None:
    """The status and the lines (without the ``endusers:`` prefix) for an error reported without a
    traceback; None for any other error, whose traceback is the report."""
    for kind, (service, variable) in SERVICES.items():
        if isinstance(exc, kind):
            return Status.UNAVAILABLE, [unavailable(service, variable, str(exc))]
    if isinstance(exc, SettingsError):
        return Status.USAGE, [f"invalid setting {problem}" for problem in exc.problems]
    if isinstance(exc, MissingSecret):
        return Status.USAGE, [str(exc)]
    if type(exc).__name__ == "KeycloakRefused":  # streams.connect.keycloak, not imported by every command
        return Status.UNAVAILABLE, [f"Keycloak: {exc}"]
    return None


def unavailable(service: str, variable: str, cause: str, traceback_hint: bool = True) -> str:
    """``Redis unavailable at redis://127.0.0.1:6379/0 (ENDUSERS_REDIS, the default): <cause>; ...``"""
    return (f"{service} unavailable at {address(variable)}: {cause.rstrip('.')}; start it or set {variable} to where "
            f"it runs (on this machine: {HINT})" + ("; -v shows the traceback" if traceback_hint else ""))


def address(variable: str) -> str:
    """The setting's value as ``endusers settings`` shows it (a password masked) and where it came from."""
    rows = {name: (value, source) for name, value, source in describe(WorkerSettings.only(variable))}
    value, source = rows[variable]
    return f"{value} ({variable}{', the default' if source == 'default' else ''})"
