"""The changes topic's wire form (schemas/changes.py): a config change's typed settings travel as the
JSON object config changes carried before they were typed, so a message already in Kafka still reads."""

from __future__ import annotations

import orjson

from schemas.changes import Change, ConfigFields, decode_batch, encode_batch, encode_row, join_rows


def test_a_config_change_written_before_settings_were_typed_still_decodes_and_encodes_the_same() -> None:
    written_before = orjson.dumps({"subscription": "acme", "changes": [
        ["login", 4, "e1", "r1", "prod", "default", {"email": ["d1", "example.com"]}, False],
        ["config", 5, "c1", "", "", "", {"platform": "odc", "capacity": {"internal": 10}, "hysteresis": 1,
                                         "runtimes": {"prod": [11, 14, 0], "dev": None}}, False,
         ["enduser.config", 0, 7, "ann"]],
    ]})
    login, config = decode_batch(written_before)
    assert login.config is None and login.fields == {"email": ["d1", "example.com"]}
    assert config.fields == {} and config.origin == ["enduser.config", 0, 7, "ann"]
    assert config.config == ConfigFields(platform="odc", capacity={"internal": 10}, hysteresis=1,
                                         runtimes={"prod": [11, 14, 0], "dev": None})
    assert type(config.config.hysteresis) is int  # a whole number stays one, as the settings hold it
    assert encode_batch("acme", [login, config]) == written_before


def test_rows_encoded_one_by_one_join_into_the_batch_message_byte_for_byte() -> None:
    """Ingest encodes each change as it makes it and joins the rows per message: the message must be
    the one ``encode_batch`` writes (and a subscription needing JSON escapes stays escaped)."""
    changes = [Change(kind="login", time=4, event_id="e1", record="r1", runtime="prod", provider="default",
                      fields={"email": ["d1", "example.com"]}, origin=["t.logins", 0, 3, None]),
               Change(kind="config", time=5, event_id="c1", config=ConfigFields(platform="odc", thresholds=[80]),
                      origin=["t.config", 1, 9, "ann"]),
               Change(kind="anonymous", time=6, record="s1", invalid_email=True)]
    for subscription in ("acme", 'quo"te\\ é'):
        joined = join_rows(subscription, [encode_row(change) for change in changes])
        assert joined == orjson.dumps({"subscription": subscription, "changes": orjson.loads(joined)["changes"]})
        assert joined == encode_batch(subscription, changes)
        assert [c.kind for c in decode_batch(joined)] == ["login", "config", "anonymous"]
        assert decode_batch(joined)[1].config == ConfigFields(platform="odc", thresholds=[80])
