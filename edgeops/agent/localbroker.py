"""A real mosquitto broker on 127.0.0.1, for the agent's tests and ``edgeops quickstart``.

:class:`LocalBroker` writes a ``mosquitto.conf`` into a work directory, starts mosquitto on a free
port and waits until the port accepts connections. It can serve TLS with a test PKI
(:func:`make_pki`, client certificates from :meth:`Pki.client`), an ACL file, a password file, and
keeps its persistence there too, so :meth:`LocalBroker.restart` (an outage on the same port) keeps
retained messages::

    with LocalBroker() as broker:
        transport = MqttTransport(broker.url, client_id="pi-01")

Nothing here is imported by ``import edgeops``; cryptography loads only in :func:`make_pki`.
"""

from __future__ import annotations

import datetime
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from ..errors import BackendUnavailableError, EdgeOpsError, UsageError

__all__ = ["LocalBroker", "Pki", "make_pki"]

INSTALL = "install it with: apt-get install mosquitto (macOS: brew install mosquitto)"
_SEARCH = ("/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin", "/usr/local/opt/mosquitto/sbin")


def _which(name: str) -> str | None:
    path = os.pathsep.join([os.environ.get("PATH", ""), *_SEARCH])
    return shutil.which(name, path=path)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class LocalBroker:
    """A mosquitto process owned by this object; ``stop()`` (or leaving the ``with``) ends it."""

    def __init__(self, *, port: int | None = None, tls: Pki | None = None, require_certificate: bool = False,
                 acl: str | None = None, passwords: dict[str, str] | None = None, allow_anonymous: bool = True,
                 persistence: bool = True, workdir: str | None = None):
        if require_certificate and tls is None:
            raise UsageError("require_certificate needs tls=make_pki(directory)")
        self.tls = tls
        self.require_certificate = require_certificate
        self.acl = acl
        self.passwords = dict(passwords or {})
        self.allow_anonymous = allow_anonymous
        self.persistence = persistence
        self._fixed_port = port is not None
        self.port: int = port or 0
        self._own_workdir = workdir is None
        self.workdir = workdir or ""
        self._proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        """Whether a mosquitto binary is on PATH or in the usual sbin directories."""
        return _which("mosquitto") is not None

    @property
    def url(self) -> str:
        return f"mqtts://localhost:{self.port}" if self.tls else f"mqtt://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> str:
        return os.path.join(self.workdir, "mosquitto.log")

    @property
    def pid(self) -> int | None:
        """The mosquitto process id while running (tests pause it with SIGSTOP to hold PUBACKs)."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, timeout: float = 5.0) -> LocalBroker:
        """Write the config, start mosquitto and wait until its port accepts connections."""
        if self.running:
            return self
        binary = _which("mosquitto")
        if binary is None:
            raise BackendUnavailableError(f"mosquitto is not installed; {INSTALL}")
        if not self.workdir:
            self.workdir = tempfile.mkdtemp(prefix="edgeops-mosquitto-")
        os.makedirs(self.workdir, exist_ok=True)
        for attempt in range(3):
            if not self._fixed_port and (attempt or not self.port):
                self.port = _free_port()
            if self._launch(binary, timeout):
                return self
            if self._fixed_port or "Address already in use" not in self._log_tail():
                break
        raise EdgeOpsError(f"mosquitto did not start on 127.0.0.1:{self.port}; its log ({self.log_path}) ends "
                           f"with:\n{self._log_tail()}")

    def _launch(self, binary: str, timeout: float) -> bool:
        conf = os.path.join(self.workdir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(self._config())
        log_from = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        with open(os.path.join(self.workdir, "mosquitto.out"), "ab") as out:
            self._proc = subprocess.Popen([binary, "-c", conf], stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL)
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self._proc.poll() is not None:
                self._proc = None
                return False
            if self._ready(log_from, time.monotonic() - started):
                return True
            time.sleep(0.01)
        self._kill()
        return False

    def _ready(self, log_from: int, elapsed: float) -> bool:
        """mosquitto logs "... running" once its listeners are open; the port alone could be someone else's."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(log_from)
                if b" running" in f.read():
                    return True
        except OSError:
            pass
        return elapsed > 0.5 and _accepts(self.port)  # no log line (another version): alive and accepting

    def stop(self) -> None:
        """Stop mosquitto gracefully (it saves retained messages), killing it after 5 s."""
        self._kill()

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart(self, down_s: float = 0.0) -> None:
        """Stop, stay down for ``down_s`` seconds, start again on the same port (an outage)."""
        self.stop()
        if down_s > 0:
            time.sleep(down_s)
        self._fixed_port = True
        try:
            self.start()
        finally:
            self._fixed_port = False

    def close(self) -> None:
        """Stop, and remove the work directory when this object created it."""
        self.stop()
        if self._own_workdir and self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- configuration -------------------------------------------------------------------------

    def _config(self) -> str:
        lines = []
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            lines.append("user root")  # otherwise mosquitto drops to `mosquitto` and cannot write here
        lines += [f"listener {self.port} 127.0.0.1",
                  f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
                  f"log_dest file {self.log_path}",
                  "log_type error", "log_type warning", "log_type notice", "log_type information",
                  "connection_messages true"]
        if self.persistence:
            lines += ["persistence true", f"persistence_location {os.path.join(self.workdir, '')}"]
        if self.tls is not None:
            lines += [f"cafile {self.tls.ca}", f"certfile {self.tls.server_cert}", f"keyfile {self.tls.server_key}"]
            if self.require_certificate:
                lines += ["require_certificate true", "use_identity_as_username true"]
        if self.acl is not None:
            path = os.path.join(self.workdir, "acl")
            with open(path, "w") as f:
                f.write(self.acl.strip() + "\n")
            lines.append(f"acl_file {path}")
        if self.passwords:
            lines.append(f"password_file {self._password_file()}")
        return "\n".join(lines) + "\n"

    def _password_file(self) -> str:
        tool = _which("mosquitto_passwd")
        if tool is None:
            raise BackendUnavailableError(f"passwords= needs mosquitto_passwd, which is missing; {INSTALL}")
        path = os.path.join(self.workdir, "passwd")
        open(path, "w").close()
        for user, password in self.passwords.items():
            done = subprocess.run([tool, "-b", path, user, password], capture_output=True, text=True)
            if done.returncode != 0:
                raise EdgeOpsError(f"mosquitto_passwd failed for user {user!r}: {done.stderr.strip()}")
        os.chmod(path, 0o600)
        return path

    def _log_tail(self, lines: int = 20) -> str:
        text = ""
        for name in ("mosquitto.out", "mosquitto.log"):
            try:
                with open(os.path.join(self.workdir, name), errors="replace") as f:
                    text += f.read()
            except OSError:
                pass
        return "\n".join(text.strip().splitlines()[-lines:]) or "(empty)"


# -- a test PKI ---------------------------------------------------------------------------------


@dataclass
class Pki:
    """PEM paths of a test CA and a server certificate for localhost / 127.0.0.1."""

    ca: str
    server_cert: str
    server_key: str
    ca_key: str = ""  # default: ca.key next to ca

    def client(self, name: str) -> tuple[str, str]:
        """A client certificate with CN=``name`` signed by the CA: ``(cert path, key path)``."""
        ca_key = self.ca_key or os.path.join(os.path.dirname(self.ca), "ca.key")
        directory = os.path.dirname(self.ca)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        cert, key = os.path.join(directory, f"client-{safe}.pem"), os.path.join(directory, f"client-{safe}.key")
        _issue(self.ca, ca_key, name, cert, key, server=False)
        return cert, key


def make_pki(directory: str, days: int = 2) -> Pki:
    """A fresh CA (EC P-256) and a server certificate for localhost and 127.0.0.1, valid ``days`` days."""
    os.makedirs(directory, exist_ok=True)
    ca, ca_key = os.path.join(directory, "ca.pem"), os.path.join(directory, "ca.key")
    _self_signed_ca(ca, ca_key, days)
    server, server_key = os.path.join(directory, "server.pem"), os.path.join(directory, "server.key")
    _issue(ca, ca_key, "localhost", server, server_key, server=True, days=days)
    return Pki(ca=ca, server_cert=server, server_key=server_key, ca_key=ca_key)


def _crypto() -> Any:
    try:
        from cryptography import x509
    except ImportError as exc:
        raise BackendUnavailableError("a test PKI needs cryptography: pip install 'edgeops[sign]'") from exc
    return x509


def _write_key(path: str, key: Any) -> None:
    from cryptography.hazmat.primitives import serialization

    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def _write_cert(path: str, cert: Any) -> None:
    from cryptography.hazmat.primitives import serialization

    with open(path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


def _builder(subject: Any, issuer: Any, public_key: Any, days: int) -> Any:
    x509 = _crypto()
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days)))


def _self_signed_ca(cert_path: str, key_path: str, days: int) -> None:
    x509 = _crypto()
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edgeops test CA")])
    cert = (_builder(name, name, key.public_key(), days)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    _write_key(key_path, key)
    _write_cert(cert_path, cert)


def _issue(ca_path: str, ca_key_path: str, cn: str, cert_path: str, key_path: str, *, server: bool,
           days: int = 2) -> None:
    x509 = _crypto()
    import ipaddress

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    with open(ca_path, "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    with open(ca_key_path, "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (_builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]), ca.subject, key.public_key(), days)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.public_key()), critical=False))
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    _write_key(key_path, key)
    _write_cert(cert_path, builder.sign(ca_key, hashes.SHA256()))
