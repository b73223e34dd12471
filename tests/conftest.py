"""Shared pytest configuration."""

import os
from typing import Any

import pytest

# Tests run workers and apps without a production secret: development mode lets them use the built-in
# one (a worker outside development refuses to start without ENDUSERS_SECRET; tests/unit/test_secrets.py).
os.environ.setdefault("ENDUSERS_ENV", "development")

from tests.fixtures.services import *  # noqa: F401,F403,E402
from tests.fixtures.pipeline import deployment_factory  # noqa: E402,F401
from tests.fixtures.clusters import cluster_deployment, kafka_cluster, redis_cluster, redis_sentinel  # noqa: E402,F401
from tests.fixtures.keycloak import keycloak  # noqa: E402,F401
from tests.fixtures.gateway import gateways  # noqa: E402,F401
from tests.fixtures.parallel import (  # noqa: E402
    GroupScheduling, groups_folder, mark_groups, remove_groups_folder, write_groups)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mark_groups(items)  # which tests share one process (tests/fixtures/parallel.py)
    write_groups(config, items)


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hooks: in the controlling process
def pytest_configure_node(node: Any) -> None:
    folder = groups_folder(os.getpid())
    folder.mkdir(exist_ok=True)
    node.workerinput["endusers_groups"] = str(folder)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> GroupScheduling | None:
    return GroupScheduling(config, log) if config.getvalue("dist") == "loadgroup" else None


def pytest_unconfigure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):
        remove_groups_folder()
