"""The pure conflict rules: each kind, both facts kept, and order-independence."""

from __future__ import annotations

import random

from central.conflicts import (
    CatalogChange,
    ConflictKind,
    EventFact,
    LedgerFact,
    classify_account,
    classify_clock,
    classify_gaps,
    classify_ticket,
    clock_skew_ms,
    contiguous_through,
    ledger_from_events,
)
from sync.hlc import pack

T = "00000000-0000-0000-0000-00000000000a"
Z = "00000000-0000-0000-0000-00000000000b"
A = "00000000-0000-0000-0000-00000000000c"


def ev(
    eid: str, dev: str, seq: int, ms: int, kind: str = "entry", verdict: str = "ok", **kw: object
) -> EventFact:
    base: dict[str, object] = {"ticket_id": T, "zone_id": Z} if kind in ("entry", "exit") else {}
    base.update(kw)
    return EventFact(
        event_id=eid, device_id=dev, device_seq=seq, hlc=pack(ms, 0), wall_ms=ms,
        catalog_seq=base.pop("catalog_seq", 0), kind=kind, verdict=verdict,  # type: ignore[arg-type]
        **base,  # type: ignore[arg-type]
    )  # fmt: skip


def test_duplicate_entry_flags_the_later_and_keeps_both_facts() -> None:
    first, second = ev("e1", "d1", 1, 1000), ev("e2", "d2", 1, 2000)
    for events in ([first, second], [second, first]):
        found = classify_ticket(T, events)
        assert [c.kind for c in found] == [ConflictKind.DUPLICATE_ENTRY]
        c = found[0]
        assert c.flagged_event_id == "e2"
        assert c.event_ids == ("e1", "e2")
        assert c.facts["stands"]["event_id"] == "e1"
        assert c.facts["flagged"]["device_id"] == "d2"
        assert c.natural_key == f"duplicate_entry:ticket:{T}:e2"


def test_an_exit_between_or_the_same_device_is_no_duplicate() -> None:
    assert classify_ticket(T, [ev("e1", "d1", 1, 1000), ev("x", "d2", 1, 1500, "exit"),
                               ev("e2", "d2", 2, 2000, "ok_reentry")]) == []  # fmt: skip
    assert classify_ticket(T, [ev("e1", "d1", 1, 1000), ev("e2", "d1", 2, 2000)]) == []
    # Refused scans never admit anyone.
    refused = ev("e2", "d2", 1, 2000, verdict="already_inside")
    assert classify_ticket(T, [ev("e1", "d1", 1, 1000), refused]) == []


def test_equal_hlc_breaks_ties_by_device_then_seq() -> None:
    a, b = ev("ea", "d-a", 5, 1000), ev("eb", "d-b", 1, 1000)
    assert classify_ticket(T, [b, a])[0].flagged_event_id == "eb"


def test_stale_catalog_and_policy_violation() -> None:
    cancelled = [CatalogChange(seq=1, at_ms=0, source="status", bad=None),
                 CatalogChange(seq=7, at_ms=500, source="status", bad="cancelled")]  # fmt: skip
    stale = classify_ticket(T, [ev("e1", "d1", 1, 1000, catalog_seq=6)], cancelled)
    assert [c.kind for c in stale] == [ConflictKind.STALE_CATALOG]
    assert stale[0].facts["catalog"] == {"seq": 7, "at_ms": 500, "state": "cancelled"}
    seen = classify_ticket(T, [ev("e1", "d1", 1, 1000, catalog_seq=7)], cancelled)
    assert [c.kind for c in seen] == [ConflictKind.POLICY_VIOLATION]
    # Admitted before the change: nothing to flag.
    assert classify_ticket(T, [ev("e1", "d1", 1, 400)], cancelled) == []


def test_an_unblock_ends_a_block_but_not_a_cancellation() -> None:
    history = [
        CatalogChange(3, 100, "block", "blocked"),
        CatalogChange(4, 200, "status", "cancelled"),
        CatalogChange(5, 300, "block", None),
    ]
    found = classify_ticket(T, [ev("e1", "d1", 1, 1000, catalog_seq=4)], history)
    assert found[0].facts["catalog"]["state"] == "cancelled"
    assert found[0].kind == ConflictKind.POLICY_VIOLATION
    unblocked = [CatalogChange(3, 100, "block", "blocked"), CatalogChange(5, 300, "block", None)]
    assert classify_ticket(T, [ev("e1", "d1", 1, 1000)], unblocked) == []


def _code(seq: int, at_ms: int, version: int = 0, code_hash: str = "aa") -> CatalogChange:
    """A ticket row in the feed: usable, with its code as of then."""
    return CatalogChange(seq, at_ms, "status", None, code_version=version, code_hash=code_hash)


def test_a_transferred_signed_code_is_stale_or_a_violation_like_a_cancellation() -> None:
    transferred = [_code(1, 0), _code(7, 500, version=1, code_hash="bb")]
    old = ev("e1", "d1", 1, 1000, catalog_seq=6, code_version=0)
    (stale,) = classify_ticket(T, [old], transferred)
    assert stale.kind == ConflictKind.STALE_CATALOG
    assert stale.facts["event"]["code_version"] == 0
    assert stale.facts["catalog"] == {"seq": 7, "at_ms": 500, "state": "transferred",
                                      "code_version": 1}  # fmt: skip
    seen = ev("e1", "d1", 1, 1000, catalog_seq=7, code_version=0)
    assert [c.kind for c in classify_ticket(T, [seen], transferred)] == [
        ConflictKind.POLICY_VIOLATION
    ]
    # The new code, the old one before the transfer, or an event that names no code: fine.
    assert classify_ticket(T, [ev("e1", "d1", 1, 1000, code_version=1)], transferred) == []
    assert classify_ticket(T, [ev("e1", "d1", 1, 400, code_version=0)], transferred) == []
    assert classify_ticket(T, [ev("e1", "d1", 1, 1000)], transferred) == []
    # A new vouch (key rotation) keeps the version: the signed code still stands.
    revouched = [_code(1, 0), _code(7, 500, code_hash="cc")]
    assert classify_ticket(T, [ev("e1", "d1", 1, 1000, code_version=0)], revouched) == []


def test_an_outside_code_is_stale_once_another_replaced_it_until_it_is_given_back() -> None:
    history = [_code(1, 0, code_hash="aa"), _code(7, 500, code_hash="bb"),
               _code(9, 800, code_hash="aa")]  # fmt: skip

    def found(code_hash: str, ms: int) -> list[tuple[str, int]]:
        event = ev("e1", "d1", 1, ms, catalog_seq=3, code_hash=code_hash)
        return [(c.kind, c.facts["catalog"]["seq"]) for c in classify_ticket(T, [event], history)]

    assert found("aa", 400) == []
    assert found("aa", 600) == [(ConflictKind.STALE_CATALOG, 7)]
    assert found("aa", 900) == []  # the ticket's code again
    assert found("bb", 600) == []
    assert found("bb", 900) == [(ConflictKind.STALE_CATALOG, 9)]
    assert found("cc", 900) == []  # never this ticket's code: nothing to say it was replaced
    (c,) = classify_ticket(T, [ev("e1", "d1", 1, 600, code_hash="aa")], history)
    assert c.facts["catalog"]["code_hash"] == "bb"
    assert c.facts["event"]["code_hash"] == "aa"


def test_a_transfer_and_a_cancellation_name_the_earlier_change() -> None:
    history = [
        _code(1, 0),
        _code(4, 100, version=1),
        CatalogChange(6, 200, "status", "cancelled", code_version=1, code_hash="aa"),
    ]
    (c,) = classify_ticket(T, [ev("e1", "d1", 1, 1000, code_version=0)], history)
    assert (c.facts["catalog"]["seq"], c.facts["catalog"]["state"]) == (4, "transferred")
    (c,) = classify_ticket(T, [ev("e1", "d1", 1, 1000, code_version=1)], history)
    assert (c.facts["catalog"]["seq"], c.facts["catalog"]["state"]) == (6, "cancelled")
    # Listed in any order, the history says the same.
    old = [ev("e1", "d1", 1, 1000, code_version=0)]
    assert classify_ticket(T, old, history[::-1]) == classify_ticket(T, old, history)


def _sale(eid: str, dev: str, seq: int, ms: int, amount: int) -> EventFact:
    return ev(eid, dev, seq, ms, "sale", "approved", account_id=A, amount=amount)


def test_overdraft_names_the_crossing_sale_and_the_prior_ones() -> None:
    events = [_sale("s1", "bar1", 1, 1000, 300), _sale("s2", "bar2", 1, 2000, 300),
              _sale("s3", "bar1", 2, 3000, 100)]  # fmt: skip
    outcome = classify_account(A, ledger_from_events(events), opening=500)
    assert outcome.balance == -200
    assert outcome.debt == 200
    (c,) = outcome.conflicts  # one episode, though s3 deepens it
    assert c.kind == ConflictKind.OVERDRAFT
    assert c.flagged_event_id == "s2"
    assert c.facts["crossing"]["event_id"] == "s2"
    assert [p["event_id"] for p in c.facts["prior"]] == ["s1"]
    assert c.detail == {"balance_before": 200, "balance_after": -100}


def test_a_topup_ends_an_episode_and_a_later_one_is_new() -> None:
    ledger = ledger_from_events([_sale("s1", "b", 1, 1000, 600), _sale("s2", "b", 3, 3000, 600)])
    ledger.append(LedgerFact((pack(2000, 0), "", 1), "ledger:1", 200))
    outcome = classify_account(A, ledger, opening=500)
    assert [c.flagged_event_id for c in outcome.conflicts] == ["s1", "s2"]
    assert outcome.conflicts[1].facts["prior"] == []  # the top-up reset what came before
    assert outcome.balance == -500
    assert outcome.debt == 500
    paid = classify_account(A, [*ledger, LedgerFact((pack(4000, 0), "", 2), "ledger:2", 500)],
                            opening=500)  # fmt: skip
    assert (paid.balance, paid.debt, len(paid.conflicts)) == (0, 0, 2)


def test_gaps_and_contiguous_ack() -> None:
    assert contiguous_through(0, [1, 2, 4, 5]) == 2
    gaps = classify_gaps("d", 2, [(4, "e4"), (5, "e5"), (9, "e9")])
    assert [(c.flagged_event_id, c.facts["missing_from"], c.facts["missing_to"]) for c in gaps] == [
        ("e4", 3, 3),
        ("e9", 6, 8),
    ]
    assert classify_gaps("d", 5, []) == []


def test_clock_skew_ahead_by_receive_time_behind_by_hlc() -> None:
    assert clock_skew_ms(wall_ms=10_000, hlc=pack(10_000, 0), received_ms=9_000) == 1000
    # Hours-old events from an offline device are not skew...
    assert clock_skew_ms(wall_ms=1_000, hlc=pack(1_000, 0), received_ms=9_000_000) == 0
    # ...but a wall clock behind the central time its HLC had learned is.
    assert clock_skew_ms(wall_ms=1_000, hlc=pack(301_000, 3), received_ms=302_000) == -300_000
    far = EventFact("e2", "d", 2, pack(500_000, 0), 500_000, 0, "log", "info", received_ms=100_000)
    near = EventFact("e1", "d", 1, pack(100_000, 0), 100_000, 0, "log", "info", received_ms=100_000)
    (c,) = classify_clock("d", [far, near], 120_000)
    assert c.flagged_event_id == "e2"
    assert c.facts["device"]["wall_ms"] == 500_000
    assert c.facts["central"]["received_ms"] == 100_000
    assert classify_clock("d", [far], 120_000, resolved_through=2) == []


def test_rules_do_not_depend_on_input_order() -> None:
    rng = random.Random(7)
    events = [ev(f"e{i}", f"d{i % 3}", i, 1000 + (i * 37) % 11 * 100,
                 "exit" if i % 4 == 3 else "entry") for i in range(1, 30)]  # fmt: skip
    expected = classify_ticket(T, events)
    for _ in range(20):
        rng.shuffle(events)
        assert classify_ticket(T, events) == expected
