"""A device log line's payload: one key for its text, whoever wrote the fields."""

from __future__ import annotations

from sync.logline import LEGACY_TEXT, MAX_TEXT, TEXT, log_payload


def test_the_text_goes_under_its_declared_key_whichever_key_it_came_under() -> None:
    assert log_payload({TEXT: "a"}) == {TEXT: "a", "level": "info"}
    assert log_payload({LEGACY_TEXT: "b", "level": "warning"}) == {TEXT: "b", "level": "warning"}
    assert log_payload({TEXT: "new", LEGACY_TEXT: "old"})[TEXT] == "new"
    assert log_payload({})[TEXT] == ""


def test_values_become_json_scalars_and_the_text_is_cut() -> None:
    payload = log_payload({TEXT: "x" * (MAX_TEXT + 9), "port": 3, "err": ValueError("no")})
    assert payload == {TEXT: "x" * MAX_TEXT, "level": "info", "port": 3, "err": "no"}
