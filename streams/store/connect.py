"""Redis clients for the three deployments ``ENDUSERS_REDIS`` can name, and the durable commit.

- ``redis://`` or ``rediss://host:port/db``: one server (``Redis.from_url``).
- ``redis+cluster://host:port,host:port[/0]`` (or ``rediss+cluster://``): Redis Cluster. The nodes
  listed are only where the client starts; it learns the rest from the cluster. A subscription's keys
  share one hash tag, so its commit script runs on one node; the subscription registry is a key of its
  own, in another slot, written with single-key commands only. Cluster has only database 0.
- ``redis+sentinel://host:port,host:port/service-name[/db]`` (or ``rediss+sentinel://``): a primary
  and its replicas watched by Sentinel. The client asks the sentinels where the primary is, and asks
  again after a failover.

Credentials go before the hosts (``redis+cluster://user:password@host:port,...``) and apply to the
Redis nodes; sentinels are asked without them unless ``ENDUSERS_REDIS_SENTINEL_PASSWORD`` is set.
These values come from the settings (``streams.settings``), as parameters: nothing here reads the
environment.

Redis replicates asynchronously: a failover can lose a commit the worker saw succeed, after Kafka's
offsets moved on. With ``ENDUSERS_REDIS_MIN_REPLICAS=N`` a commit counts only once ``WAIT N`` on the
same connection confirms that N replicas have it; see :func:`eval_durably`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, TypeAlias, cast
from urllib.parse import unquote

import redis
import redis.asyncio
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel
from redis.cluster import ClusterNode as SyncClusterNode
from redis.cluster import RedisCluster as SyncRedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

AsyncClient: TypeAlias = "redis.asyncio.Redis | RedisCluster"
SyncClient: TypeAlias = "redis.Redis | SyncRedisCluster"

SINGLE_SCHEMES = ("redis", "rediss", "unix")
CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}
SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}


class BadRedisUrl(ValueError):
    """``ENDUSERS_REDIS`` cannot be used; the message shows the URL with its password masked."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"ENDUSERS_REDIS={masked(url)!r}: {reason}")
        self.reason = reason


def masked(url: str) -> str:
    """``url`` as it may be printed: the password before the hosts (and a ``password=`` parameter)
    replaced by ``****``, the user name kept."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    credentials, at, hosts = authority.rpartition("@")
    if at and ":" in credentials:
        authority = f"{credentials.partition(':')[0]}:****@{hosts}"
    elif at and not sep:
        authority = f"****@{hosts}"
    return re.sub(r"(?i)(password=)[^&]*", r"\1****", f"{scheme}{sep}{authority}{slash}{path}")


class NotDurable(RedisError):
    """The commit ran, but fewer replicas than ``ENDUSERS_REDIS_MIN_REPLICAS`` confirmed it in time.

    A failover now could lose it, so the worker must not acknowledge the batch to Kafka: it drops the
    cached state and counts the batch again (the stored position makes that safe)."""


@dataclass(frozen=True)
class Target:
    """Where ``ENDUSERS_REDIS`` points, parsed."""

    mode: str  # "single", "cluster" or "sentinel"
    url: str
    nodes: list[tuple[str, int]] = field(default_factory=list)
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None
    ssl: bool = False

    def options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.username:
            options["username"] = self.username
        if self.password:
            options["password"] = self.password
        if self.ssl:
            options["ssl"] = True
        return options


def parse(url: str) -> Target:
    """``ENDUSERS_REDIS`` -> its mode, nodes, service and database; a clear error when malformed."""
    scheme, sep, rest = url.partition("://")
    known = (*SINGLE_SCHEMES, *CLUSTER_SCHEMES, *SENTINEL_SCHEMES)
    if not sep:
        raise BadRedisUrl(url, "expected a URL such as redis://host:6379/0")
    if scheme not in known:
        raise BadRedisUrl(url, f"unknown scheme {scheme!r}; allowed schemes: {', '.join(known)}")
    if scheme in SINGLE_SCHEMES:
        return Target("single", url)
    credentials, _, location = rest.rpartition("@")
    username = password = None
    if credentials:
        user, colon, secret = credentials.partition(":")
        username, password = (unquote(user) or None), (unquote(secret) if colon else None)
    hosts, _, path = location.partition("/")
    nodes = [_host_port(item, url) for item in hosts.split(",") if item.strip()]
    if not nodes:
        raise BadRedisUrl(url, "no host:port before the path")
    parts = [p for p in path.split("?")[0].split("/") if p]
    if scheme in CLUSTER_SCHEMES:
        if parts not in ([], ["0"]):
            raise BadRedisUrl(url, "Redis Cluster has only database 0")
        return Target("cluster", url, nodes, db=0, username=username, password=password,
                      ssl=CLUSTER_SCHEMES[scheme])
    if not parts or len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
        raise BadRedisUrl(url, "expected redis+sentinel://host:port,.../service-name/db")
    return Target("sentinel", url, nodes, service=parts[0], db=int(parts[1]) if len(parts) == 2 else 0,
                  username=username, password=password, ssl=SENTINEL_SCHEMES[scheme])


def _host_port(item: str, url: str) -> tuple[str, int]:
    host, colon, port = item.strip().rpartition(":")
    if not colon or not port.isdigit():
        raise BadRedisUrl(url, f"{item!r} is not host:port")
    return host.strip("[]"), int(port)


def _sentinel_options(password: str | None) -> dict[str, Any]:
    return {"password": password} if password else {}


def connect(url: str, sentinel_password: str | None = None) -> AsyncClient:
    """An asyncio client for ``url`` (nothing is sent until the first command); ``sentinel_password``
    is the sentinels' own (``ENDUSERS_REDIS_SENTINEL_PASSWORD``)."""
    target = parse(url)
    if target.mode == "cluster":
        return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in target.nodes], **target.options())
    if target.mode == "sentinel":
        sentinel: Any = cast(Any, Sentinel)(target.nodes, sentinel_kwargs=_sentinel_options(sentinel_password),
            socket_timeout=5.0)
        client: redis.asyncio.Redis = sentinel.master_for(target.service, db=target.db, socket_timeout=5.0,
                                                          **target.options())
        return client
    return redis.asyncio.Redis.from_url(url)


def connect_bounded(url: str, max_connections: int, timeout: float = 5.0,
                    sentinel_password: str | None = None) -> AsyncClient:
    """A client whose pool holds at most ``max_connections`` (per node on a cluster), for readers that
    must not take the count stage's connections. On one server a caller waits up to ``timeout`` for a
    free connection; on a cluster or Sentinel one beyond the limit fails at once (redis-py has no
    waiting pool for them), which the HTTP side reports as 503."""
    target = parse(url)
    if target.mode == "cluster":
        return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in target.nodes],
                            max_connections=max_connections, **target.options())
    if target.mode == "sentinel":
        sentinel: Any = cast(Any, Sentinel)(target.nodes, sentinel_kwargs=_sentinel_options(sentinel_password),
            socket_timeout=5.0)
        client: redis.asyncio.Redis = sentinel.master_for(target.service, db=target.db, socket_timeout=5.0,
                                                          max_connections=max_connections, **target.options())
        return client
    return redis.asyncio.Redis(connection_pool=redis.asyncio.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=timeout))


def connect_sync(url: str, sentinel_password: str | None = None) -> SyncClient:
    """The blocking twin of :func:`connect`, for scripts and tests."""
    target = parse(url)
    if target.mode == "cluster":
        node: Any = SyncClusterNode  # redis-py leaves the sync cluster's constructors untyped
        return SyncRedisCluster(startup_nodes=[node(h, p) for h, p in target.nodes],
                                **target.options())
    if target.mode == "sentinel":
        from redis.sentinel import Sentinel as SyncSentinel

        sentinel = cast(Any, SyncSentinel)(target.nodes, sentinel_kwargs=_sentinel_options(sentinel_password),
            socket_timeout=5.0)
        client: redis.Redis = sentinel.master_for(target.service, db=target.db, socket_timeout=5.0,
                                                  **target.options())
        return client
    return redis.Redis.from_url(url)


async def eval_durably(client: AsyncClient, script: AsyncScript, keys: list[str], args: list[Any],
                       replicas: int, timeout_ms: int) -> Any:
    """Run ``script`` and, when ``replicas`` > 0, ``WAIT replicas timeout_ms`` on the same connection.

    ``WAIT`` counts the replicas that have everything *this connection* wrote, so both commands go in
    one pipeline, which redis-py sends on one connection. On a cluster the pipeline groups commands by
    node: the script goes to the node of its keys' slot and ``WAIT`` (which has no key) is sent to that
    same node explicitly. If the slot moved in between (a failover), the pair did not share a
    connection and the commit is reported as not durable. The script cache is not replicated, so a
    newly promoted primary answers NOSCRIPT once; the script is then loaded and the pair sent again
    (the script's position check makes a second run harmless).
    """
    if replicas <= 0:
        return await script(keys=keys, args=args)
    for _ in range(3):
        node = _primary_of(client, keys[0])
        pipe: Any = client.pipeline(transaction=False)
        pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)  # cluster pipelines block .evalsha()
        if node is not None:
            pipe.execute_command("WAIT", replicas, timeout_ms, target_nodes=node)
        else:
            pipe.execute_command("WAIT", replicas, timeout_ms)
        result, confirmed = await pipe.execute(raise_on_error=False)
        if isinstance(result, NoScriptError):
            await client.script_load(script.script)
            continue
        if isinstance(result, BaseException):
            raise result
        if isinstance(confirmed, BaseException):
            raise NotDurable(f"WAIT failed after the commit: {confirmed}") from confirmed
        if node is not None and _moved(client, keys[0], node):
            raise NotDurable(f"the slot of {keys[0]} moved from {node.name} during the commit")
        if int(confirmed) < replicas:
            raise NotDurable(f"{confirmed} of {replicas} replicas confirmed the commit within {timeout_ms} ms")
        return result
    raise NotDurable("the commit script could not be loaded on the primary")


def _primary_of(client: AsyncClient, key: str) -> ClusterNode | None:
    """On a cluster, the primary that holds ``key``'s slot; None for one server or Sentinel (one primary)."""
    return client.get_node_from_key(key) if isinstance(client, RedisCluster) else None


def _moved(client: AsyncClient, key: str, node: ClusterNode) -> bool:
    """Whether ``key``'s slot is no longer on ``node`` (a failover between two commands)."""
    primary = _primary_of(client, key)
    return primary is None or primary.name != node.name


async def confirm_durably(client: AsyncClient, key: str, replicas: int, timeout_ms: int) -> None:
    """Make sure everything the primary of ``key`` holds so far is on ``replicas`` replicas.

    Used when a reload finds a batch already applied by an unconfirmed commit: a small write on one
    connection followed by ``WAIT`` there confirms it, because a replica receives the primary's writes
    in order. The write touches a field no reader uses.
    """
    if replicas <= 0:
        return
    node = _primary_of(client, key)
    pipe: Any = client.pipeline(transaction=False)
    pipe.hincrby(key, "confirmations", 1)
    if node is not None:
        pipe.execute_command("WAIT", replicas, timeout_ms, target_nodes=node)
    else:
        pipe.execute_command("WAIT", replicas, timeout_ms)
    _, confirmed = await pipe.execute()
    if node is not None and _moved(client, key, node):
        raise NotDurable(f"the slot of {key} moved from {node.name} during the confirmation")
    if int(confirmed) < replicas:
        raise NotDurable(f"{confirmed} of {replicas} replicas confirmed within {timeout_ms} ms")
