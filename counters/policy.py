"""Which records count (docs/rules.md), which may be deduplicated, which are classified, per platform and
runtime version."""

from __future__ import annotations

from collections.abc import Collection, Sequence

ODC = "odc"
O11 = "o11"
DEDUP_SINCE = (11, 11, 3)
CLASSIFIED_SINCE = (11, 7, 0)


def _older(version: Sequence[int] | None, since: tuple[int, int, int]) -> bool:
    """A runtime with no version behaves as the newest; missing version parts are zeros."""
    if version is None:
        return False
    padded = tuple(version) + (0,) * (3 - len(version))
    return padded < since


def is_countable(platform: str, active: bool, logged_in: bool) -> bool:
    """Active, and on ODC logged in at least once (O11 counts from the user records)."""
    return active and (platform != ODC or logged_in)


def is_excluded(provider: str, flagged: bool, excluded_providers: Collection[str]) -> bool:
    """Not an end user (docs/rules.md, accounts that are not end users): the record's provider is
    excluded, or the record itself is marked ``excluded``. Such a record never counts and never links
    others; it is reported apart when it would otherwise count."""
    return flagged or provider in excluded_providers


def is_dedup_eligible(platform: str, version: Sequence[int] | None, default_tenant: bool) -> bool:
    """ODC: every record; O11 >= 11.11.3: records in a default tenant; older O11: none."""
    if platform == ODC:
        return True
    return default_tenant and not _older(version, DEDUP_SINCE)


def is_unclassified(platform: str, version: Sequence[int] | None) -> bool:
    """O11 runtimes older than 11.7.0 do not classify users: they count as internal."""
    return platform != ODC and _older(version, CLASSIFIED_SINCE)


def counts_alike(platform: str, before: Sequence[int] | None, after: Sequence[int] | None) -> bool:
    """Whether a runtime's records count the same under two versions: the same dedup eligibility and
    the same classification. An upgrade that crosses neither 11.7.0 nor 11.11.3 (or any version
    change on ODC) changes no record's facts, so nothing needs regrouping."""
    return (is_dedup_eligible(platform, before, True), is_unclassified(platform, before)) == \
        (is_dedup_eligible(platform, after, True), is_unclassified(platform, after))
