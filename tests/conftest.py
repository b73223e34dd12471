"""Shared pytest configuration."""

from tests.fixtures.services import *  # noqa: F401,F403
