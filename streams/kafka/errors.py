"""Kafka errors as :class:`BrokerUnavailable`: the command line reports a broker that cannot be reached
or refuses the client in one line without knowing aiokafka, as it does the store's ``StoreUnavailable``."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from aiokafka.errors import KafkaError

P = ParamSpec("P")
R = TypeVar("R")


class BrokerUnavailable(Exception):
    """Kafka could not be reached, or refused the request (its message names the cause, e.g.
    ``KafkaConnectionError: Unable to bootstrap from ...``)."""


def translated(method: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """``method`` raising :class:`BrokerUnavailable` where Kafka or the network failed; other errors
    pass unchanged."""

    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except (KafkaError, OSError) as exc:
            name, message = type(exc).__name__, str(exc)  # aiokafka's messages often start with the name
            raise BrokerUnavailable(message if message.startswith(name) else f"{name}: {message}") from exc

    return call
