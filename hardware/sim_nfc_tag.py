"""A simulated NFC tag: a second process playing a tag on nfcpy's `udp:` driver.

Run as ``python -m hardware.sim_nfc_tag --type 2|3 --port N --uid HEX --ndef HEX``.
It prints ``ready`` once listening, serves readers until ``--seconds`` pass, then exits.
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import reduce
from operator import xor
from typing import Any

import nfc
import nfc.clf
import nfc.tag
import nfc.tag.tt3

# NTAG213 answers GET_VERSION with these 8 bytes (NXP data sheet); nfcpy maps them to a model.
NTAG213_VERSION = bytes.fromhex("0004040201000f03")


def type2_memory(uid: bytes, ndef_message: bytes, *, raw_tlv: bytes | None = None) -> bytearray:
    """NTAG-like memory: UID pages, capability container, an NDEF TLV, padded to 45 pages."""
    assert len(uid) == 7
    bcc0 = 0x88 ^ uid[0] ^ uid[1] ^ uid[2]
    bcc1 = reduce(xor, uid[3:7])
    mem = bytearray(uid[0:3]) + bytes([bcc0]) + uid[3:7] + bytes([bcc1, 0x48, 0, 0])
    mem += bytes([0xE1, 0x10, 0x12, 0x00])  # CC: NDEF 1.0, 144 data bytes, read/write
    tlv = bytes([3, len(ndef_message)]) + ndef_message + b"\xfe" if raw_tlv is None else raw_tlv
    mem += tlv
    mem += bytes(45 * 4 - len(mem))
    return mem


def _type2_reply(mem: bytearray, uid: bytes, cmd: bytes) -> bytes | None:
    """One Type 2 command → response, including re-selection, as an NTAG would answer."""
    cl1 = bytes([0x88, *uid[0:3]])
    cl1 += bytes([reduce(xor, cl1)])
    cl2 = bytes(uid[3:7]) + bytes([reduce(xor, uid[3:7])])
    if cmd in (b"\x26", b"\x52"):
        return b"\x44\x00"  # SENS_RES of a double-size UID tag
    if cmd == b"\x93\x20":
        return cl1
    if cmd == b"\x95\x20":
        return cl2
    if cmd[:2] == b"\x93\x70":
        return b"\x04"  # SEL_RES: UID not complete
    if cmd[:2] == b"\x95\x70":
        return b"\x00"  # SEL_RES: Type 2 tag
    if cmd[:1] == b"\x30" and len(cmd) == 2:
        page = cmd[1] % (len(mem) // 4)
        data = (mem + mem)[page * 4 : page * 4 + 16]
        return bytes(data)
    if cmd == b"\x60":
        return NTAG213_VERSION
    return None  # unsupported (e.g. 0x1A authenticate): a real tag goes mute


def serve_type2(
    path: str, uid: bytes, mem: bytearray, until: float, vanish_after: int | None = None
) -> None:
    """Listen as a Type 2 tag and answer commands until `until`; with `vanish_after`, leave
    the field (exit) after answering that many READ commands, as a wristband pulled away."""
    reads = 0
    clf = nfc.ContactlessFrontend(path)
    print("ready", flush=True)
    try:
        while time.monotonic() < until:
            target = nfc.clf.LocalTarget("106A")
            target.sens_res = bytearray(b"\x44\x00")
            target.sdd_res = bytearray(uid)
            target.sel_res = bytearray(b"\x00")
            activated = clf.listen(target, max(0.1, until - time.monotonic()))
            if activated is None or activated.tt2_cmd is None:
                continue
            cmd: bytes | None = bytes(activated.tt2_cmd)
            while time.monotonic() < until:
                if cmd and cmd[:1] == b"\x30":
                    reads += 1
                    if vanish_after is not None and reads > vanish_after:
                        return
                rsp = _type2_reply(mem, uid, cmd) if cmd else None
                try:
                    data = clf.exchange(bytearray(rsp) if rsp else None, 0.5)
                except nfc.clf.TimeoutError:
                    cmd = None
                    continue
                except nfc.clf.CommunicationError:
                    break  # the reader went away (RFOFF): listen again
                cmd = bytes(data) if data else None
    finally:
        clf.close()


def _tt3_attribute(ndef_len: int) -> bytearray:
    """The Type 3 attribute block: version 1.0, 1 block per read/write, NDEF length."""
    nblocks = max(1, (ndef_len + 15) // 16)
    block = bytearray([0x10, 4, 4, 0, nblocks, 0, 0, 0, 0, 0, 0])
    block += ndef_len.to_bytes(3, "big")
    block += sum(block[0:14]).to_bytes(2, "big")
    return block


def serve_type3(path: str, idm: bytes, ndef_message: bytes, until: float) -> None:
    """Emulate a Type 3 tag through nfcpy's card emulation API until `until`."""
    data = _tt3_attribute(len(ndef_message)) + ndef_message
    data += bytes(-len(data) % 16)

    def on_startup(target: Any) -> Any:
        target.brty = "212F"
        # PMm: IC code 0301, then the response-time bytes a reader derives its command
        # timeouts from; all at their maximum (about 0.3 s a command rather than a real
        # tag's few ms), as an emulator in another process on a loaded machine needs.
        target.sensf_res = bytearray([1]) + idm + bytes.fromhex("0301ffffffffffff") + b"\x12\xfc"
        return target

    def read(block: int, rb: bool, re: bool) -> bytes | None:
        return bytes(data[block * 16 : block * 16 + 16]) if block * 16 < len(data) else None

    def on_connect(tag: Any) -> bool:
        tag.add_service(0x0009, read, None)
        tag.add_service(0x000B, read, None)
        return True

    clf = nfc.ContactlessFrontend(path)
    print("ready", flush=True)
    try:
        while time.monotonic() < until:
            clf.connect(
                card={"on-startup": on_startup, "on-connect": on_connect, "timeout": 0.5},
                terminate=lambda: time.monotonic() > until,
            )
    finally:
        clf.close()


def main(argv: list[str]) -> int:
    """Parse arguments and serve one emulated tag."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--type", choices=["2", "3"], required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--uid", required=True, help="7-byte UID (type 2) or 8-byte IDm (type 3)")
    parser.add_argument("--ndef", default="", help="NDEF message, hex")
    parser.add_argument("--raw-tlv", default=None, help="type 2: raw TLV area, hex (bad input)")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--vanish-after", type=int, default=None, help="type 2: READs answered")
    args = parser.parse_args(argv)
    path = f"udp:localhost:{args.port}"
    until = time.monotonic() + args.seconds
    uid, message = bytes.fromhex(args.uid), bytes.fromhex(args.ndef)
    if args.type == "2":
        raw = bytes.fromhex(args.raw_tlv) if args.raw_tlv is not None else None
        memory = type2_memory(uid, message, raw_tlv=raw)
        serve_type2(path, uid, memory, until, args.vanish_after)
    else:
        serve_type3(path, uid, message, until)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
