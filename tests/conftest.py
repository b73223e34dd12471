"""Shared pytest configuration."""

import os

import pytest

# Tests run workers and apps without a production secret: development mode lets them use the built-in
# one (a worker outside development refuses to start without ENDUSERS_SECRET; tests/unit/test_secrets.py).
os.environ.setdefault("ENDUSERS_ENV", "development")

from tests.fixtures.services import *  # noqa: F401,F403,E402
from tests.fixtures.pipeline import deployment_factory  # noqa: E402,F401
from tests.fixtures.clusters import cluster_deployment, kafka_cluster, redis_cluster, redis_sentinel  # noqa: E402,F401
from tests.fixtures.keycloak import keycloak  # noqa: E402,F401
from tests.fixtures.gateway import gateways  # noqa: E402,F401
from tests.fixtures.parallel import mark_groups  # noqa: E402


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the marks (--dist loadgroup)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_groups(items)
