"""An NFC wristband reader (nfcpy): tag id plus any NDEF records, reopened when unplugged."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from config.hardware import NfcReaderConfig
from hardware.base import Counters, NdefRecord, ReaderState, ReaderUnavailable, Scan
from hardware.faults import missing_library, nfc_fault

log = logging.getLogger("hardware.nfc_wristband")

MAX_BACKOFF_S = 30.0
# Type A (NTAG wristbands), Type B, FeliCa: what festival wristbands use.
TARGETS = ["106A", "106B", "212F"]


def _records(octets: bytes, counters: Counters, source: str) -> tuple[NdefRecord, ...]:
    """Decode an NDEF message strictly; a malformed one is dropped, counted and logged."""
    import ndef

    try:
        records = list(ndef.message_decoder(octets, errors="strict"))
    except (ndef.DecodeError, ValueError, TypeError) as exc:
        counters.add("bad_ndef")
        log.warning(
            "dropped a malformed NDEF message: %s",
            exc,
            extra={"event": "nfc.bad_ndef", "reader": source},
        )
        return ()
    out = []
    for record in records:
        text = getattr(record, "text", None) or getattr(record, "iri", None)
        out.append(NdefRecord(record.type, record.name, bytes(record.data), text))
    return tuple(out)


class NfcWristbandReader:
    """Reports each tag once per tap: waits until it leaves the field before reading again."""

    def __init__(self, config: NfcReaderConfig) -> None:
        self.name = config.name
        self.config = config
        self.counters = Counters()
        self.state = ReaderState()
        try:
            import ndef  # noqa: F401
            import nfc
        except (ImportError, OSError) as exc:  # OSError: libusb-1.0 missing where it loads
            raise missing_library("NFC reader", "nfc", exc) from exc
        self._nfc = nfc

    def _open(self) -> Any:
        try:
            clf = self._nfc.ContactlessFrontend()
            # open() answers False when no device matches the path; IOError when one is busy
            # (kernel driver) or not permitted.
            if not clf.open(self.config.path):
                raise nfc_fault(self.config.path, None)
            return clf
        except OSError as exc:
            raise nfc_fault(self.config.path, exc) from exc

    def _read(self, tag: Any) -> Scan | None:
        uid = bytes(tag.identifier)
        records: tuple[NdefRecord, ...] = ()
        ndef_area = tag.ndef  # reads the capability container: may raise if the tag leaves
        if ndef_area is not None:
            records = _records(bytes(ndef_area.octets), self.counters, self.name)
        elif not self._present(tag):
            # nfcpy reports a failed NDEF read as "no NDEF": a tag that is gone right after
            # was pulled away mid-read, so this tap is incomplete. Drop it; the guest taps again.
            self._lost("tag left before it was read")
            return None
        return Scan(self.name, tag_uid=uid, ndef=records)

    def _lost(self, why: object) -> None:
        self.counters.add("tag_lost")
        log.warning("%s", why, extra={"event": "nfc.tag_lost", "reader": self.name})

    def _serve(self, clf: Any, stop: threading.Event) -> Iterator[Scan]:
        options = {
            "targets": TARGETS,
            "on-connect": lambda tag: False,  # hand the tag back: we read it here
            "iterations": 1,
            "interval": 0.1,
            "beep-on-connect": False,
        }
        while not stop.is_set():
            tag = clf.connect(rdwr=options, terminate=stop.is_set)
            if tag is False:
                # nfcpy swallows IOError (reader unplugged) and answers False.
                raise ReaderUnavailable(f"NFC reader at {self.config.path} stopped answering")
            if tag is None or tag is True:
                continue
            try:
                scan = self._read(tag)
            except (self._nfc.tag.TagCommandError, self._nfc.clf.CommunicationError) as exc:
                self._lost(f"tag left before it was read: {exc}")
                continue
            if scan is None:
                continue
            yield scan
            # One tap, one scan: wait for the tag to leave before sensing again.
            while not stop.is_set() and self._present(tag):
                stop.wait(0.1)

    def _present(self, tag: Any) -> bool:
        try:
            return bool(tag.is_present)
        except Exception:  # presence checks fail in many ways once the tag is gone
            return False

    def scans(self, stop: threading.Event) -> Iterator[Scan]:
        """Yield taps until `stop`, reopening the reader with backoff when it disappears."""
        backoff = self.config.reopen_backoff_s
        while not stop.is_set():
            started = time.monotonic()
            try:
                clf = self._open()
            except ReaderUnavailable as exc:
                self.counters.add("open_failures")
                log.error("%s", exc, extra={"event": "nfc.unavailable", "reader": self.name})
                stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            # Up only now: nfcpy opened the configured device. Until then (no reader at the
            # path, busy, not permitted) it stays down while this loop retries.
            self.state.set(True)
            try:
                try:
                    yield from self._serve(clf, stop)
                finally:  # down and released before any backoff
                    self.state.set(False)
                    clf.close()
            except ReaderUnavailable as exc:
                self.counters.add("lost")
                log.error("%s", exc, extra={"event": "nfc.lost", "reader": self.name})
                if time.monotonic() - started > MAX_BACKOFF_S:
                    backoff = self.config.reopen_backoff_s  # it ran well: start over
                stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
