"""Shared pytest configuration."""

from tests.fixtures.services import *  # noqa: F401,F403
from tests.fixtures.pipeline import deployment_factory  # noqa: E402,F401
