"""streams/cli/present.py: the terminal table of ``endusers counts``."""

from __future__ import annotations

import re

import pytest

from streams.cli.present import counts_table, domains_table, shared_warnings
from tests.unit.fake_counts import counts


def document() -> dict:
    acme = counts(1200, 3, runtimes={"prod": {"internal": 1000, "external": 3, "records": 1100},
                                     "dev": {"internal": 200, "external": 0, "records": 210}},
                  anonymous=42, levels={"internal": 80, "external": 0}, excluded=17)
    return {"subscriptions": {"acme": acme, "beta": counts(1, 0)}}


def test_rows_runtimes_and_levels() -> None:
    text = counts_table(document())
    lines = text.splitlines()
    assert lines[0].split() == ["Subscription", "Internal", "External", "Records", "Excluded", "Anonymous", "Levels"]
    acme = next(line for line in lines if line.startswith("acme"))
    assert "1,200" in acme and "1,203" in acme and "42" in acme and "int 80%" in acme
    assert acme.split()[4] == "17"  # excluded accounts, apart from the classes
    runtime_rows = [line for line in lines if "└" in line]
    assert [row.split()[1] for row in runtime_rows] == ["dev", "prod", "default"]
    assert "1,000" in runtime_rows[1] and "1,100" in runtime_rows[1]
    assert lines.index(acme) < lines.index(runtime_rows[0]) < [i for i, l in enumerate(lines) if l.startswith("beta")][0]
    assert "\x1b[" not in text  # plain unless asked


def test_capacity_from_settings_or_argument() -> None:
    doc = document()
    doc["subscriptions"]["acme"]["settings"] = {"capacity": {"internal": 1500, "external": None}}
    text = counts_table(doc, capacities={"beta": {"internal": 0, "external": 10}})
    assert "1,200 / 1,500 (80%)" in text
    assert "3 / unlimited" in text
    assert "1 / 0 (over)" in text and "0 / 10 (0%)" in text


def test_color_and_empty() -> None:
    assert "\x1b[" in counts_table(document(), capacities={"acme": {"internal": 1000, "external": 1}}, color=True)
    assert counts_table({"subscriptions": {}}) == "No subscriptions.\n"


def test_shared_identifiers_are_a_warning_per_subscription() -> None:
    found = [{"digest": f"{n:016x}", "kind": "email" if n else "username", "records": 10 - n, "runtimes": {}}
             for n in range(4)]
    text = shared_warnings({"acme": {"threshold": 5, "identifiers": found},
                            "beta": {"threshold": 5, "identifiers": []}})
    assert text.splitlines() == [
        "! acme: 4 shared identifier(s) held by more than 5 records each, counted as one individual: "
        "username 0000000000000000 (10 records), email 0000000000000001 (9 records), "
        "email 0000000000000002 (8 records) and 1 more"]
    assert shared_warnings({}) == ""


HOSTILE = "acme\x1b]0;owned\x07\x1b[2J\x9b31m\u202eevil"
"""A name that retitles and clears a terminal, a one-byte CSI, and a right-to-left override."""


def _no_control_characters(text: str) -> None:
    assert not [c for c in text if (ord(c) < 0x20 and c != "\n") or 0x7f <= ord(c) <= 0x9f or c == "\u202e"], text


def test_names_are_printed_with_their_control_characters_escaped() -> None:
    table = counts_table({"subscriptions": {HOSTILE: {"internal": 1, "runtimes": {HOSTILE: {"internal": 1}}}}},
                         color=True)
    _no_control_characters(_without_styles(table))  # rich's own styles are SGR sequences only
    assert "acme\\x1b]0;owned\\x07\\x1b[2J\\x9b31m\\u202eevil" in _without_styles(table)
    _no_control_characters(domains_table(HOSTILE, 1, {"top": [[HOSTILE, 1]]}))
    _no_control_characters(shared_warnings({HOSTILE: {"identifiers": [{"kind": "email", "digest": "d", "records": 9}],
                                                     "threshold": 5}}))


def _without_styles(text: str) -> str:
    """The output without the SGR sequences rich writes itself (``ESC [ digits ; m``)."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_audit_prints_actors_and_settings_with_control_characters_escaped(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from streams.cli import commands

    entry = {"applied": "2026-01-01T00:00:00Z", "actor": HOSTILE, "topic": "enduser.config", "partition": 0,
             "offset": 1, "event_id": HOSTILE, "event_time": "2026-01-01T00:00:00Z", "changed": ["platform"],
             "before": {"platform": None}, "after": {"platform": "odc\x9b"}}
    monkeypatch.setattr(commands, "_with_store", lambda read: [entry])
    result = CliRunner().invoke(commands.main, ["audit", "acme"])
    assert result.exit_code == 0, result.output
    _no_control_characters(result.output)
    assert "acme\\x1b]0;owned" in result.output and '"odc\\x9b"' in result.output
