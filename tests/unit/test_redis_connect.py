"""ENDUSERS_REDIS names one server, a Redis Cluster or a Sentinel-watched primary."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from streams.store.connect import Target, connect, parse


def test_a_plain_url_stays_a_single_server() -> None:
    assert parse("redis://127.0.0.1:6379/3") == Target("single", "redis://127.0.0.1:6379/3")
    assert isinstance(connect("rediss://user:pw@host:6380/0"), Redis)


def test_a_cluster_url_lists_its_startup_nodes_with_credentials_and_tls() -> None:
    target = parse("rediss+cluster://app:s%40cret@a.example:7000,b.example:7001/0")
    assert (target.mode, target.nodes, target.db, target.ssl) == ("cluster", [("a.example", 7000), ("b.example", 7001)], 0, True)
    assert target.options() == {"username": "app", "password": "s@cret", "ssl": True}
    assert parse("redis+cluster://h:1").nodes == [("h", 1)]


def test_a_cluster_has_only_database_zero() -> None:
    with pytest.raises(ValueError, match="only database 0"):
        parse("redis+cluster://h:7000/2")


def test_a_sentinel_url_names_its_service_and_database() -> None:
    target = parse("redis+sentinel://:pw@s1:26379,s2:26379,s3:26379/endusers/4")
    assert (target.mode, target.service, target.db, target.password) == ("sentinel", "endusers", 4, "pw")
    assert len(target.nodes) == 3
    assert parse("redis+sentinel://s1:26379/endusers").db == 0


@pytest.mark.parametrize("url", ["redis+sentinel://s1:26379", "redis+sentinel://s1:26379/a/b",
                                 "redis+cluster://nohostport/0", "redis+cluster:///0", "localhost:6379"])
def test_a_malformed_url_says_what_is_expected(url: str) -> None:
    with pytest.raises(ValueError, match="ENDUSERS_REDIS"):
        parse(url)


def test_cluster_and_sentinel_urls_make_their_clients() -> None:
    assert isinstance(connect("redis+cluster://127.0.0.1:7000,127.0.0.1:7001"), RedisCluster)
    assert isinstance(connect("redis+sentinel://127.0.0.1:26379/endusers/0"), Redis)
