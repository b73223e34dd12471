"""Redis errors as the ports' ``StoreUnavailable``: callers wait for the store without knowing Redis."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from redis.exceptions import RedisError

from counters import StoreUnavailable

P = ParamSpec("P")
R = TypeVar("R")


def translated(method: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """``method`` raising ``StoreUnavailable`` (its message naming the cause, e.g. ``ConnectionError:
    ...``) where Redis or the network failed; other errors pass unchanged."""

    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc

    return call
