"""A throwaway PKI for the TLS tests, made with ``trustme``: a CA, a server certificate for localhost and
127.0.0.1 (what :class:`~edgeops.agent.localbroker.LocalBroker` serves), and client certificates whose
common name mosquitto takes as the MQTT user name. PEM files in one folder; keys readable by the owner only.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any


@dataclass
class Pki:
    """PEM paths of a test CA and a server certificate for localhost / 127.0.0.1."""

    ca: str
    server_cert: str
    server_key: str
    ca_key: str
    authority: Any  # the trustme.CA that signs client certificates
    days: int = 2

    def client(self, name: str) -> tuple[str, str]:
        """A client certificate with CN=``name`` signed by the CA: ``(cert path, key path)``."""
        directory = os.path.dirname(self.ca)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        cert, key = os.path.join(directory, f"client-{safe}.pem"), os.path.join(directory, f"client-{safe}.key")
        leaf = self.authority.issue_cert(safe, common_name=name, **_validity(self.days))
        leaf.cert_chain_pems[0].write_to_path(cert)
        _write_key(key, leaf.private_key_pem.bytes())
        return cert, key


def make_pki(directory: str, days: int = 2) -> Pki:
    """A fresh CA and a server certificate for localhost and 127.0.0.1, valid ``days`` days."""
    import trustme

    os.makedirs(directory, exist_ok=True)
    authority = trustme.CA()
    ca, ca_key = os.path.join(directory, "ca.pem"), os.path.join(directory, "ca.key")
    authority.cert_pem.write_to_path(ca)
    _write_key(ca_key, authority.private_key_pem.bytes())
    server = authority.issue_cert("localhost", "127.0.0.1", common_name="localhost", **_validity(days))
    server_cert, server_key = os.path.join(directory, "server.pem"), os.path.join(directory, "server.key")
    server.cert_chain_pems[0].write_to_path(server_cert)
    _write_key(server_key, server.private_key_pem.bytes())
    return Pki(ca=ca, server_cert=server_cert, server_key=server_key, ca_key=ca_key, authority=authority, days=days)


def _validity(days: int) -> dict[str, datetime.datetime]:
    """From five minutes ago (a clock a little behind) for ``days`` days: short-lived."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return {"not_before": now - datetime.timedelta(minutes=5), "not_after": now + datetime.timedelta(days=days)}


def _write_key(path: str, pem: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
