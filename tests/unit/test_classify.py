"""classify: whatever a scanner or a person sends, a kind and never an exception."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.vocab import MAX_CODE_CHARS
from edge.decide import GateContext, ScannedCode, classify, decide_entry
from sync import ticketcode
from sync.verdicts import GateCode
from tests.unit.factories import (
    FESTIVAL_BYTES,
    NOW,
    SIGNATURE_START,
    VERSION_BYTE,
    Cache,
    flip_bit,
    new_id,
    signer,
    truncate,
    zone,
)

KEY = signer(key_id=3)
CODE = KEY.sign(new_id())
SQL = "' OR 1=1; DROP TABLE ticket;--"


def gate_verdict(code: ScannedCode) -> GateCode:
    """The verdict for a scan against a cache holding only the festival key."""
    cache = Cache()
    cache.add_key(KEY.row())
    ctx = GateContext(
        festival_id=cache.festival_id,
        zone=zone(),
        code=code,
        key=cache.keys.get(code.signed.key_id) if code.signed is not None else None,
    )
    return GateCode(decide_entry(ctx, NOW).code)


# fmt: off
CASES: list[tuple[str, str | bytes, str, str]] = [
    # (id, scanned input, expected kind, expected text)
    ("empty str", "", "garbage", ""),
    ("empty bytes", b"", "garbage", ""),
    ("spaces", "    ", "garbage", ""),
    ("whitespace mix", " \t\r\n\x0b\x0c ", "garbage", ""),
    ("invalid utf-8", b"\xc3\x28\xa0\xa1", "garbage", ""),
    ("lone continuation byte", b"ABC\x80", "garbage", ""),
    ("utf-16 bytes", "TICKET".encode("utf-16"), "garbage", ""),
    ("nul inside", "ABC\x00DEF", "garbage", ""),
    ("escape sequence", "\x1b[2JABC", "garbage", ""),
    ("DEL", "ABC\x7f", "garbage", ""),
    ("bell bytes", b"AB\x07CD", "garbage", ""),
    ("right-to-left override", "ABC\u202eDEF", "garbage", ""),
    ("zero-width space", "ABC\u200bDEF", "garbage", ""),
    ("newline inside", "ABC\nDEF", "garbage", ""),
    ("100 KB string", "A" * 100_000, "garbage", ""),
    ("100 KB in our namespace", "FG1." + "A" * 100_000, "garbage", ""),
    ("one char over the limit", "B" * (MAX_CODE_CHARS + 1), "garbage", ""),
    ("at the limit", "B" * MAX_CODE_CHARS, "opaque", "B" * MAX_CODE_CHARS),
    ("SQL metacharacters", SQL, "opaque", SQL),
    ("SQL as bytes", SQL.encode(), "opaque", SQL),
    ("opaque with CRLF", "EXT-1234\r\n", "opaque", "EXT-1234"),
    ("unicode letters", "Tïckét-№7", "opaque", "Tïckét-№7"),
    ("inner space kept", "AB CD", "opaque", "AB CD"),
    ("lowercase prefix is not ours", "fg1." + CODE[4:], "opaque", "fg1." + CODE[4:]),
    ("signed", CODE, "signed", CODE),
    ("signed as bytes", CODE.encode(), "signed", CODE),
    ("signed with trailing CRLF", CODE + "\r\n", "signed", CODE),
    ("signed bytes with CRLF", CODE.encode() + b"\r\n", "signed", CODE),
    ("signed with pasted spaces", "  " + CODE + " \t", "signed", CODE),
    ("signature bit flipped", flip_bit(CODE, SIGNATURE_START), "signed",
     flip_bit(CODE, SIGNATURE_START)),
    ("prefix only", "FG1.", "malformed", "FG1."),
    ("truncated by one", truncate(CODE, 1), "malformed", truncate(CODE, 1)),
    ("truncated by two (bad base32 length)", truncate(CODE, 2), "malformed", truncate(CODE, 2)),
    ("one char too long", CODE + "A", "malformed", CODE + "A"),
    ("longer than any code", CODE + "AAAAAAAA", "malformed", CODE + "AAAAAAAA"),
    ("lowercase body", "FG1." + CODE[4:].lower(), "malformed", "FG1." + CODE[4:].lower()),
    ("not base32", "FG1." + "!" * 180, "malformed", "FG1." + "!" * 180),
    ("space inside", CODE[:50] + " " + CODE[51:], "malformed", CODE[:50] + " " + CODE[51:]),
    ("version bit flipped", flip_bit(CODE, VERSION_BYTE), "malformed",
     flip_bit(CODE, VERSION_BYTE)),
    ("SQL in our namespace", "FG1." + SQL, "malformed", "FG1." + SQL),
]
# fmt: on


@pytest.mark.parametrize(
    ("raw", "kind", "text"), [pytest.param(r, k, t, id=i) for i, r, k, t in CASES]
)
def test_classify(raw: str | bytes, kind: str, text: str) -> None:
    scanned = classify(raw)
    assert scanned.kind == kind
    assert scanned.text == text
    assert (scanned.signed is not None) == (kind == "signed")


EXPECTED_GATE = {
    "garbage": GateCode.UNKNOWN,
    "opaque": GateCode.UNKNOWN,
    "malformed": GateCode.FORGED,
}


@pytest.mark.parametrize(
    ("raw", "kind"), [pytest.param(r, k, id=i) for i, r, k, _ in CASES if k != "signed"]
)
def test_unsigned_input_is_refused_at_the_gate(raw: str | bytes, kind: str) -> None:
    assert gate_verdict(classify(raw)) == EXPECTED_GATE[kind]


def test_signed_code_survives_the_scanner_suffix() -> None:
    scanned = classify(CODE + "\r\n")
    assert scanned.signed is not None
    assert scanned.signed == ticketcode.decode(CODE)
    assert gate_verdict(scanned) == GateCode.OK


def test_flipped_signature_decodes_but_does_not_verify() -> None:
    scanned = classify(flip_bit(CODE, SIGNATURE_START + 5, 7))
    assert scanned.kind == "signed"
    assert scanned.signed is not None
    assert not scanned.signed.verify(ticketcode.public_bytes(KEY.private))
    assert gate_verdict(scanned) == GateCode.FORGED


def test_flipped_festival_is_told_apart() -> None:
    assert gate_verdict(classify(flip_bit(CODE, FESTIVAL_BYTES.start))) == GateCode.WRONG_FESTIVAL


@pytest.mark.parametrize("seed", range(25))
def test_random_bytes(seed: int) -> None:
    raw = random.Random(seed).randbytes(1 + seed * 7)
    scanned = classify(raw)
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        text = None
    if text and text.isprintable() and len(text) <= MAX_CODE_CHARS:
        assert (scanned.kind, scanned.text) == ("opaque", text)
    else:
        assert (scanned.kind, scanned.text) == ("garbage", "")
    assert gate_verdict(scanned) == GateCode.UNKNOWN


KINDS = {"signed", "malformed", "opaque", "garbage"}
REFUSALS = {GateCode.UNKNOWN, GateCode.FORGED, GateCode.WRONG_FESTIVAL}
BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567="


def check_never_raises(raw: str | bytes) -> None:
    scanned = classify(raw)
    assert scanned.kind in KINDS
    assert len(scanned.text) <= MAX_CODE_CHARS
    assert scanned.text == scanned.text.strip()
    if scanned.kind == "garbage":
        assert scanned.text == ""
    verdict = decide_entry(
        GateContext(festival_id=new_id(), zone=zone(capacity=0), code=scanned), NOW
    )
    assert verdict.code in REFUSALS
    assert not verdict.admits


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    check_never_raises(raw)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=4096))
def test_arbitrary_text_never_raises(raw: str) -> None:
    check_never_raises(raw)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=BASE32, max_size=200))
def test_text_in_our_namespace_never_raises(body: str) -> None:
    scanned = classify("FG1." + body)
    assert scanned.kind in {"signed", "malformed"}
    check_never_raises("FG1." + body)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, ticketcode.ENCODED_BYTES - 1), st.integers(0, 7), st.binary(max_size=8))
def test_mangled_real_codes_never_admit(index: int, bit: int, tail: bytes) -> None:
    text = flip_bit(CODE, index, bit)
    assert classify(text).kind in {"signed", "malformed"}
    assert gate_verdict(classify(text)) in {GateCode.FORGED, GateCode.WRONG_FESTIVAL}
    assert gate_verdict(classify(text.encode() + tail)) in REFUSALS
