"""``edgeops keygen`` and ``edgeops bundle create|inspect|verify``: signed bundles from the command line."""

from __future__ import annotations

import os
from typing import Any

import click

from ..errors import UsageError
from ._output import console, emit_json

_as_json = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")


@click.command()
@click.option("--out", "prefix", required=True, metavar="PREFIX", help="Write PREFIX.key and PREFIX.pub.")
@_as_json
def keygen(prefix: str, as_json: bool) -> None:
    """Make an Ed25519 signing key pair: PREFIX.key (private, mode 0600) and PREFIX.pub."""
    from ..bundle import key_id
    from ..bundle import keygen as make_pair

    key_path, pub_path = make_pair(prefix)
    kid = key_id(pub_path)
    if as_json:
        emit_json({"key": key_path, "pub": pub_path, "key_id": kid})
        return
    click.echo(f"wrote {key_path} (private: keep it on the build host) and {pub_path} (give it to verifiers)")
    click.echo(f"key id {kid}")


@click.group()
def bundle() -> None:
    """Pack a model into a signed bundle (.eob), show one, verify one."""


def _tolerances(values: tuple[str, ...]) -> dict[str, float] | None:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not key.strip():
            raise UsageError(f"--tolerance {item!r} must be NAME=NUMBER, e.g. max_abs=1e-3")
    return out or None


def _preprocessing(value: str | None) -> dict[str, Any] | None:
    """``--preprocessing``: JSON text, or the path of a JSON file; strict, bounded JSON (:mod:`edgeops._json`)."""
    from .. import _json

    if value is None:
        return None
    raw: str | bytes = value
    if os.path.isfile(value):
        with open(value, "rb") as fh:
            raw = fh.read(_json.MAX_BYTES + 1)  # anything longer is refused by its size
    try:
        return _json.loads(raw, what="the JSON", error=UsageError)
    except UsageError as exc:
        raise UsageError(f"--preprocessing must be a JSON object or a JSON file: {exc}") from exc


@bundle.command("create")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The bundle to write (.eob).")
@click.option("--name", required=True, help="Bundle name (a plain word).")
@click.option("--version", "version", required=True, help="Bundle version, e.g. 1.2.0.")
@click.option("--key", default=None, type=click.Path(dir_okay=False), help="Sign with this PREFIX.key.")
@click.option("--profile", default=None, type=click.Path(dir_okay=False),
              help="Reference profile (default: MODEL's NAME.profile.json when present).")
@click.option("--report", default=None, type=click.Path(dir_okay=False), help="Validate report (.json or .html).")
@click.option("--sample", default=None, type=click.Path(dir_okay=False), help="Health-check inputs (.npz/.npy).")
@click.option("--target", default=None, help="Device target the model was built for.")
@click.option("--tolerance", "tolerance", multiple=True, metavar="NAME=NUMBER",
              help="Health-check tolerance, e.g. max_abs=1e-3 (repeatable).")
@click.option("--preprocessing", default=None, metavar="JSON", help="Preprocessing as JSON, or a JSON file.")
@_as_json
def create(model: str, output: str, name: str, version: str, key: str | None, profile: str | None,
           report: str | None, sample: str | None, target: str | None, tolerance: tuple[str, ...],
           preprocessing: str | None, as_json: bool) -> None:
    """Pack MODEL with its profile, report and sample into one bundle, signed with --key."""
    from ..bundle import create as make

    manifest = make(model, output, name=name, version=version, key=key, profile=profile, report=report,
                    sample=sample, target=target, preprocessing=_preprocessing(preprocessing),
                    tolerances=_tolerances(tolerance))
    if as_json:
        emit_json({"path": output, "manifest": manifest.data, "signed": manifest.signed, "key_id": manifest.key_id})
        return
    signed = f"signed by key {manifest.key_id}" if manifest.signed else "unsigned"
    click.echo(f"wrote {output}: {manifest.name} {manifest.version} (id {manifest.id}), "
               f"{len(manifest.files)} files, {signed}")


@bundle.command("inspect")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@_as_json
def inspect(path: str, as_json: bool) -> None:
    """Show a bundle's manifest and files, without verifying hashes or the signature."""
    from ..bundle import read_manifest

    manifest = read_manifest(path)
    if as_json:
        emit_json({"path": path, "manifest": manifest.data, "signed": manifest.signed, "key_id": manifest.key_id})
        return
    _human(path, manifest)


def _human(path: str, manifest: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    d = manifest.data
    out = console()
    out.print(f"[bold]{escape(path)}[/bold]  {escape(d['name'])} {escape(d['version'])}  id {d['id']}")
    out.print(f"created {escape(d['created'])} with edgeops {escape(d['edgeops'])}"
              + (f", target {escape(d['target'])}" if d.get("target") else ""))
    out.print(f"signed by key {manifest.key_id}" if manifest.signed else "unsigned")
    model = d["model"]
    out.print(f"model {escape(model['file'])} ({model['format']}), sha256 {model['sha256']}")
    for kind in ("inputs", "outputs"):
        for t in model.get(kind) or []:
            shape = "?" if t.get("shape") is None else str(t["shape"]).replace("None", "?")
            out.print(f"  {kind[:-1]} {escape(str(t.get('name')))} {shape} {escape(str(t.get('dtype')))}")
    if d.get("validation"):
        out.print(f"validation: {'PASS' if d['validation'].get('passed') else 'FAIL'}")
    table = Table("file", "size", "sha256", box=None)
    for name, entry in d["files"].items():
        table.add_row(escape(name), str(entry["size"]), entry["sha256"][:16])
    out.print(table)


@bundle.command("verify")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--pubkey", "pubkeys", multiple=True, type=click.Path(dir_okay=False),
              help="Trusted public key (PREFIX.pub, repeatable); the bundle must be signed by one of them.")
@click.option("--require-signature", is_flag=True, help="Fail on an unsigned bundle even without --pubkey.")
@_as_json
def verify(path: str, pubkeys: tuple[str, ...], require_signature: bool, as_json: bool) -> None:
    """Check a bundle: structure, every hash, and the signature. Exit 1 when any check fails."""
    from ..bundle import BundleError
    from ..bundle import verify as check

    try:
        manifest = check(path, trusted_keys=list(pubkeys) or None, require_signature=require_signature)
    except BundleError as exc:
        if as_json:
            emit_json({"path": path, "verified": False, "error": str(exc)})
        raise
    trust = "unsigned"
    if manifest.signed:
        trust = f"signed by trusted key {manifest.key_id}"
        if not pubkeys:
            trust = f"signed by key {manifest.key_id} (signature intact; pass --pubkey to check who signed)"
    if as_json:
        emit_json({"path": path, "verified": True, "name": manifest.name, "version": manifest.version,
                   "id": manifest.id, "signed": manifest.signed, "key_id": manifest.key_id,
                   "trusted": bool(pubkeys) and manifest.signed})
        return
    click.echo(f"OK {path}: {manifest.name} {manifest.version} (id {manifest.id}), {trust}")
