"""``flash``: put a bundle on a device's model store and activate it: one function, three transports.

:func:`flash` picks the transport from ``to`` and returns a :class:`FlashResult` for each:

* ``DIR`` (a mounted SD card, or a store on this machine): :class:`~.store.ModelStore` install + switch.
* ``ssh://user@host[:port]/path/to/store``: the system's ``scp`` copies the bundle to a temporary
  file on the device, then ``ssh`` runs ``edgeops store install TMP --store PATH --activate --json``
  there (every word quoted with :func:`shlex.quote`), its JSON answer is read back, and the
  temporary file is removed. ``ssh_command`` / ``scp_command`` are the seam: the tests pass small
  scripts that run the same command lines locally.
* ``mqtt://`` or ``mqtts://`` (a broker, with ``fleet=`` and ``device=``): through the device
  agent's OTA state machine (:mod:`edgeops.deploy.mqtt` sends, :mod:`edgeops.agent.ota` receives).

Errors: :class:`FlashError` (exit 2) when the transport fails (ssh cannot connect, scp cannot
copy, edgeops missing on the device, no answer over MQTT, a device-side failure);
:class:`FlashRefused` (exit 1) when the device refused the bundle (verification failed there),
did not activate it, or rolled it back. Where the device answered, the error's ``result`` holds
its answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from ..errors import EdgeOpsError, UsageError
from .result import FlashError, FlashRefused, FlashResult

DEFAULT_REMOTE_STORE = "/var/lib/edgeops/models"
REMOTE_TMP = "/tmp"
_TAIL = 800  # characters of a failing command's stderr shown in the error


MQTT_SCHEMES = ("mqtt", "mqtts", "ws", "wss")


@dataclass(frozen=True)
class SshTarget:
    """Where ``ssh://user@host:port/path`` points: ``destination`` is ``user@host`` (or ``host``)."""

    host: str
    user: str | None
    port: int | None
    path: str

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    @property
    def scp_host(self) -> str:
        """The destination as scp wants it: an IPv6 address in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}" if self.user else host


def parse_ssh_url(url: str, store_path: str | None = None) -> SshTarget:
    """``ssh://[user@]host[:port][/abs/path]``; the path defaults to ``store_path`` or the usual store."""
    parts = urlsplit(url)
    if parts.scheme != "ssh" or not parts.hostname:
        raise UsageError(f"{url!r} is not an ssh URL; write ssh://user@host[:port]/path/to/store")
    try:
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"{url!r} has a bad port: {exc}") from exc
    path = unquote(parts.path) if parts.path not in ("", "/") else (store_path or DEFAULT_REMOTE_STORE)
    if parts.query or parts.fragment:
        raise UsageError(f"{url!r}: remove the ?query/#fragment; only ssh://user@host[:port]/path is understood")
    return SshTarget(host=parts.hostname, user=unquote(parts.username) if parts.username else None,
                     port=port, path=path)


def flash(bundle: str | os.PathLike[str], to: str, *, store_path: str | None = None, activate: bool = True,
          trusted_keys: Any = None, ssh_command: Sequence[str] = ("ssh",), scp_command: Sequence[str] = ("scp",),
          progress: bool = True, remote_edgeops: str = "edgeops", fleet: str | None = None,
          device: str | None = None, timeout: float = 300.0, mqtt_auth: Mapping[str, Any] | None = None
          ) -> FlashResult:
    """Install ``bundle`` on the store at ``to`` (a folder, an ssh:// URL, or with ``fleet`` and
    ``device`` an MQTT broker's URL) and, by default, activate it.

    ``store_path`` is, for a folder, the store's path inside it (an SD card's root plus
    ``var/lib/edgeops/models``), and for an ssh URL without a path, the remote store.
    ``trusted_keys`` checks the signature here before anything is sent (and in the local store).
    Over MQTT the device's agent verifies, installs, checks and commits or rolls back within
    ``timeout`` seconds; ``mqtt_auth`` holds the broker's ``username``, ``password``, ``ca``, ``cert``,
    ``key``. Returns a :class:`FlashResult` when the new model is installed (and activated); raises
    :class:`FlashRefused` or :class:`FlashError` otherwise.
    """
    bundle = os.fspath(bundle)
    scheme = urlsplit(to).scheme if "://" in to else ""
    if scheme in MQTT_SCHEMES or fleet is not None or device is not None:
        if not fleet or not device:
            raise UsageError("MQTT flashing goes through the device agent: use "
                             f"`edgeops flash {bundle} --broker {to} --fleet FLEET --device DEVICE`")
        return _flash_over_mqtt(bundle, to, fleet, device, trusted_keys=trusted_keys, timeout=timeout,
                                progress=progress, auth=mqtt_auth or {})
    if scheme not in ("", "ssh"):
        raise UsageError(f"cannot flash to {to!r}: give a folder, ssh://user@host/path, or --broker mqtt://...")
    ssh = parse_ssh_url(to, store_path) if scheme == "ssh" else None
    check_bundle(bundle)  # before anything on the target is touched
    if ssh is not None:
        return flash_ssh(bundle, ssh, activate=activate, trusted_keys=trusted_keys,
                         ssh_command=ssh_command, scp_command=scp_command, progress=progress,
                         remote_edgeops=remote_edgeops)
    return flash_dir(bundle, to, store_path=store_path, activate=activate, trusted_keys=trusted_keys,
                     progress=progress)


_NOT_BUNDLES = {"onnx": "an ONNX model", "tflite": "a TFLite model", "zip": "a zip archive"}


def check_bundle(bundle: str) -> None:
    """Refuse, with exit 2, a path that is not an edgeops bundle: missing (the same words as every
    command), empty, or something else (a model: say how to make a bundle of it). Read-only."""
    from ..formats import SNIFF_BYTES, check_model_path, sniff_format

    check_model_path(bundle)
    with open(bundle, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    kind = sniff_format(head)
    if kind == "bundle":
        return
    what = "empty" if not head else _NOT_BUNDLES.get(kind or "", "not an edgeops bundle")
    if kind in ("onnx", "tflite"):
        stem = os.path.splitext(bundle)[0]
        name = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(stem)).lstrip("._-") or "model"
        make = f"edgeops bundle create {shlex.quote(bundle)} -o {shlex.quote(stem + '.eob')} --name {name}"
    else:
        make = "edgeops bundle create MODEL -o NAME.eob --name NAME"
    raise UsageError(f"{bundle} is {what}, and flash ships bundles (.eob); make one with "
                     f"`{make} --version 1.0.0`")


def flash_dir(bundle: str, to: str, *, store_path: str | None = None, activate: bool = True,
              trusted_keys: Any = None, progress: bool = True) -> FlashResult:
    """Install into the store at ``to`` (joined with ``store_path`` if given) and switch to it."""
    from .store import ModelStore

    if not os.path.isdir(to):
        raise UsageError(f"{to} is not a folder; mount the SD card or create the store folder first")
    root = os.path.join(to, store_path.lstrip("/\\")) if store_path else to
    store = ModelStore(root)
    with _spinner(progress, f"installing {os.path.basename(bundle)} into {root}"):
        info = store.install(bundle, trusted_keys=trusted_keys, require_signature=trusted_keys is not None)
        if activate:
            store.switch(info.slot)
    details = {"transport": "dir", "store": store.root, **info.to_dict(), "activated": activate}
    return FlashResult(transport="dir", target=store.root, outcome="committed" if activate else "installed",
                       name=info.name, version=info.version, slot=info.slot, details=details)


def flash_ssh(bundle: str, target: SshTarget, *, activate: bool = True, trusted_keys: Any = None,
              ssh_command: Sequence[str] = ("ssh",), scp_command: Sequence[str] = ("scp",),
              progress: bool = True, remote_edgeops: str = "edgeops") -> FlashResult:
    """Copy with scp, install with ``edgeops store install`` over ssh, read its JSON, clean up."""
    from ..bundle import verify

    manifest = verify(bundle, trusted_keys=trusted_keys, require_signature=trusted_keys is not None)
    remote_tmp = f"{REMOTE_TMP}/edgeops-{uuid.uuid4().hex[:12]}.eob"
    size_kib = os.path.getsize(bundle) / 1024
    copied = False
    try:
        with _spinner(progress, f"copying {os.path.basename(bundle)} ({size_kib:.0f} KiB) to {target.destination}"):
            _run([*scp_command, *_scp_port(target), os.path.abspath(bundle), f"{target.scp_host}:{remote_tmp}"],
                 what=f"scp to {target.destination}", target=target)
        copied = True
        with _spinner(progress, f"installing {manifest.name} {manifest.version} on {target.destination}"):
            words = [remote_edgeops, "store", "install", remote_tmp, "--store", target.path, "--json"]
            if activate:
                words.insert(-1, "--activate")
            out = _run_remote(ssh_command, target, words, what="edgeops store install")
    finally:  # after a failed scp the host is likely unreachable: /tmp keeps the partial file
        if copied:
            _cleanup(ssh_command, target, remote_tmp)
    result = _parse_answer(out, target)
    if activate and not result.get("activated"):
        raise FlashRefused(f"{target.destination} installed {manifest.name} {manifest.version} but did not activate it")
    details = {"transport": "ssh", "host": target.host, "store": target.path, **result}
    return FlashResult(transport="ssh", target=target.host, outcome="committed" if activate else "installed",
                       name=_text(result.get("name")), version=_text(result.get("version")),
                       slot=_text(result.get("slot")), details=details)


def _flash_over_mqtt(bundle: str, url: str, fleet: str, device: str, *, trusted_keys: Any, timeout: float,
                     progress: bool, auth: Mapping[str, Any]) -> FlashResult:
    """Check here, hand over to the device's agent (:func:`.mqtt.flash_mqtt`), and raise for any verdict
    but ``committed``."""
    from ..bundle import verify
    from .mqtt import flash_mqtt

    check_bundle(bundle)
    verify(bundle, trusted_keys=trusted_keys, require_signature=trusted_keys is not None)
    result = flash_mqtt(bundle, url, fleet, device, timeout=timeout, progress=progress, **auth)
    if result.outcome == "committed":
        return result
    reason = result.reason or "no reason given"
    if result.outcome in ("refused", "rolled_back"):
        raise FlashRefused(f"{fleet}/{device} {result.outcome.replace('_', ' ')} the update: {reason}", result)
    raise FlashError(f"the update of {fleet}/{device} did not happen ({result.outcome}): {reason}", result)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _scp_port(target: SshTarget) -> list[str]:
    return ["-P", str(target.port)] if target.port else []


def _ssh_base(ssh_command: Sequence[str], target: SshTarget) -> list[str]:
    port = ["-p", str(target.port)] if target.port else []
    return [*ssh_command, *port, target.destination]


def _run_remote(ssh_command: Sequence[str], target: SshTarget, words: list[str], *, what: str) -> str:
    """Run ``words`` on the device as one shell-quoted command line; its stdout, or a clear error."""
    line = " ".join(shlex.quote(w) for w in words)
    return _run([*_ssh_base(ssh_command, target), line], what=what, target=target, remote=True)


def _run(argv: list[str], *, what: str, target: SshTarget, remote: bool = False) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise FlashError(f"{argv[0]} is not installed here; install OpenSSH's client (ssh and scp)") from exc
    if proc.returncode == 0:
        return proc.stdout
    tail = _tail(proc.stderr)
    if remote and proc.returncode == 1:
        raise FlashRefused(f"{target.destination} refused the bundle: {tail}")
    if remote and proc.returncode == 127:
        raise FlashError(f"edgeops is not installed on {target.destination} (or not on its PATH): {tail}; "
                         "install it there (pip install edgeops) or pass --remote-edgeops /path/to/edgeops")
    if proc.returncode == 255 or not remote:
        raise FlashError(f"{what} failed (exit {proc.returncode}): {tail}; check that "
                         f"`{' '.join(_ssh_base(('ssh',), target))} true` works without a password prompt")
    raise FlashError(f"{what} on {target.destination} failed (exit {proc.returncode}): {tail}")


def _cleanup(ssh_command: Sequence[str], target: SshTarget, remote_tmp: str) -> None:
    """Best effort: remove the copied bundle; a failure here never hides the install's result."""
    with contextlib.suppress(EdgeOpsError):
        _run_remote(ssh_command, target, ["rm", "-f", remote_tmp], what="cleanup")


def _parse_answer(out: str, target: SshTarget) -> dict[str, Any]:
    try:
        data = json.loads(out)
    except ValueError as exc:
        raise FlashError(f"{target.destination} answered something that is not JSON: {_tail(out)!r}; "
                         "is the edgeops there the same version as here?") from exc
    if not isinstance(data, dict):
        raise FlashError(f"{target.destination} answered {_tail(out)!r}, expected a JSON object")
    return data


def _tail(text: str) -> str:
    text = (text or "").strip()
    if not text:
        return "(no message)"
    return text if len(text) <= _TAIL else "..." + text[-_TAIL:]


@contextlib.contextmanager
def _spinner(enabled: bool, label: str) -> Iterator[None]:
    """A rich spinner with elapsed time on stderr, drawn only when a person watches (a terminal)."""
    if not (enabled and sys.stderr.isatty()):
        yield
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=True,
                  console=Console(file=sys.stderr)) as bar:
        bar.add_task(label, total=None)
        yield
