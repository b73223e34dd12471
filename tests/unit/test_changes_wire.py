"""The changes topic's wire form (schemas/changes.py): a config change's typed settings travel as the
JSON object config changes carried before they were typed, so a message already in Kafka still reads."""

from __future__ import annotations

import orjson

from schemas.changes import ConfigFields, decode_batch, encode_batch


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
