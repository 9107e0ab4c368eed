"""Rollout rows written into a store the way the controller writes them (edgeops/fleet/rollout.py), for the
page's tests: an uploaded bundle, ``create_rollout``, then a halt or a stage move, device rows, measured gates."""

from __future__ import annotations

import hashlib
from typing import Any

from edgeops.fleet.rollout import bucket, create_rollout
from edgeops.fleet.rollout_gates import check, parse_gates


def make_rollout(store: Any, fleet: str, rid: str, *, stages: str = "1,10,50,100", stage: int = 0,
                 gates: tuple[str, ...] = ("p95_ratio<=1.2",), values: dict[str, float | None] | None = None,
                 devices: dict[str, str] | None = None, state: str = "running", reason: str | None = None,
                 created: int | None = None) -> dict[str, Any]:
    """A rollout ``rid`` of bundle digits 2.0 at ``stage`` (index), ``devices`` as {device: OTA state}, its gates
    measured as ``values`` (None: not measured yet), in ``state`` with ``reason`` (what ``_halt`` writes)."""
    data = f"bundle of {rid}".encode()
    sha = hashlib.sha256(data).hexdigest()
    store.put_bundle(fleet, sha, data)
    row = create_rollout(store, fleet, {"id": rid, "bundle": sha, "name": "digits", "version": "2.0", "stages": stages,
                                        "gates": list(gates), "soak_s": 60})
    if created is not None:
        row.update(created=created, updated=created + 1000)
    row.update(stage=stage, state=state, reason=reason, phase="rollback" if state == "halted" else row["phase"])
    if values is not None:
        row["gates"] = check(parse_gates(row["spec"]["gates"], defaults=False), values)
    store.put_rollout(row)
    for device, ota in (devices or {}).items():
        store.put_rollout_device({"rollout": rid, "device": device, "stage": 0, "bucket": bucket(rid, device),
                                  "state": ota, "attempts": 1 if ota != "pending" else 0, "from_version": "1.0",
                                  "version": "2.0" if ota == "updated" else None, "deployment": None,
                                  "error": "timed out" if ota == "failed" else None, "updated": row["updated"],
                                  "committed_at": None})
    return row
