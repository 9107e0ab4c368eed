"""A real mosquitto broker on 127.0.0.1, for the agent's tests and ``edgeops quickstart``.

:class:`LocalBroker` writes a ``mosquitto.conf`` into a work directory, starts mosquitto on a free
port and waits until the port accepts connections. It can serve TLS given the PEM files of a CA
and a server certificate (:class:`ServerTls`; the tests make them with ``trustme``), an ACL file,
a password file and further ``mosquitto.conf`` lines (``extra_config``, e.g. raised queue limits),
and keeps its persistence there too, so :meth:`LocalBroker.restart` (an outage on the same port)
keeps retained messages and persistent sessions::

    with LocalBroker() as broker:
        transport = MqttTransport(broker.url, client_id="pi-01")

Nothing here is imported by ``import edgeops``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from typing import Any, Protocol

from ..errors import BackendUnavailableError, EdgeOpsError, UsageError

__all__ = ["LocalBroker", "ServerTls"]

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


class ServerTls(Protocol):
    """PEM file paths mosquitto serves TLS with: the CA clients are checked against, its own certificate
    (for ``localhost``, the broker's URL host) and key."""

    @property
    def ca(self) -> str: ...

    @property
    def server_cert(self) -> str: ...

    @property
    def server_key(self) -> str: ...


class LocalBroker:
    """A mosquitto process owned by this object; ``stop()`` (or leaving the ``with``) ends it."""

    def __init__(self, *, port: int | None = None, tls: ServerTls | None = None, require_certificate: bool = False,
                 acl: str | None = None, passwords: dict[str, str] | None = None, allow_anonymous: bool = True,
                 persistence: bool = True, workdir: str | None = None, extra_config: Sequence[str] = ()):
        if require_certificate and tls is None:
            raise UsageError("require_certificate needs tls= (the CA, server certificate and key files)")
        self.tls = tls
        self.require_certificate = require_certificate
        self.acl = acl
        self.passwords = dict(passwords or {})
        self.allow_anonymous = allow_anonymous
        self.persistence = persistence
        self.extra_config = list(extra_config)  # mosquitto.conf lines added last, e.g. "max_queued_messages 100000"
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
        lines += self.extra_config
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
