"""`serve --tls-cert/--tls-key`: a device's sync client with the festival's CA talks to
central over https (a CA and certificate made here, now); and the request id a device sends
is the one central logs."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from psycopg import AsyncConnection

from central.enrol import create_enrol_code
from central.sample import create_sample_festival
from sync.client import CentralClient, CentralRefused, CentralUnavailable
from tests.central.serve_proc import serve


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


_CA_USAGE = x509.KeyUsage(
    digital_signature=True, content_commitment=False, key_encipherment=False,
    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
    encipher_only=False, decipher_only=False,
)  # fmt: skip


_CA_USAGE = x509.KeyUsage(
    digital_signature=True, content_commitment=False, key_encipherment=False,
    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
    encipher_only=False, decipher_only=False,
)  # fmt: skip


def make_tls(tmp: Path) -> tuple[Path, Path, Path]:
    """A festival CA, and central's certificate for 127.0.0.1 signed by it: (ca, cert, key)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("festival test CA"))
        .issuer_name(_name("festival test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_CA_USAGE, critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("central"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = tmp / "ca.pem", tmp / "central.pem", tmp / "central.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(_pem(key))
    return paths


async def test_a_device_with_the_festival_ca_enrols_over_https(pg_dsn: str, tmp_path: Path) -> None:
    async with await AsyncConnection.connect(pg_dsn) as conn:
        fest = await create_sample_festival(conn, signed_tickets=1, opaque_tickets=0)
        code = await create_enrol_code(
            conn,
            festival_id=fest.festival_id,
            role="gate",
            zone_id=fest.zone_id,
            vendor_id=None,
            ttl_s=600,
        )
        await conn.commit()
    ca, cert, key = make_tls(tmp_path)
    tls = ("--tls-cert", str(cert), "--tls-key", str(key))
    with serve(tmp_path, *tls, dsn=pg_dsn, ca=ca) as central:
        assert central.url.startswith("https://")
        async with CentralClient(central.url, ca_bundle=ca) as device:
            enrolled = await device.enrol(code, "north-1")
        async with CentralClient(central.url, token=enrolled.token, ca_bundle=ca) as device:
            page = await device.changes(0, limit=1)
        async with CentralClient(central.url) as without_the_ca:  # the system's CAs only
            with pytest.raises(CentralUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
                await without_the_ca.enrol("whatever", "x")
    assert enrolled.festival_id == fest.festival_id
    assert page.head_seq >= 1


async def test_the_request_id_a_device_logs_is_the_one_central_logs(
    pg_dsn: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with serve(tmp_path, "--log-format", "json", dsn=pg_dsn) as central:
        async with CentralClient(central.url) as device:
            with (
                caplog.at_level(logging.WARNING, logger="sync.client"),
                pytest.raises(CentralRefused),
            ):
                await device.enrol("no-such-code", "x")
        central.stop()
    [device_line] = [r.getMessage() for r in caplog.records if r.name == "sync.client"]
    rid = device_line.rsplit("(request ", 1)[1].rstrip(")")
    central_lines = [json.loads(line) for line in central.log_text().splitlines() if line]
    [access] = [line for line in central_lines if line.get("request_id") == rid]
    assert access["path"] == "/v1/devices/enroll"
    assert str(access["status"]) in device_line
