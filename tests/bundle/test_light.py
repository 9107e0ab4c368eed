"""Bundles keep the device side light: cryptography loads only for a signed bundle or a key."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import needs_ort


def _modules(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True).stdout
    return {m.split(".")[0] for m in json.loads(out.splitlines()[-1])}


@pytest.mark.parametrize("code, loads_crypto", [
    pytest.param("import edgeops.bundle", False, id="import-edgeops-bundle"),
    pytest.param("import edgeops.bundle as b; b.verify({unsigned!r})", False, id="verify-unsigned"),
    pytest.param("import edgeops; edgeops.load({unsigned!r})", False, marks=needs_ort,
                 id="load-unsigned"),
    pytest.param("import edgeops.bundle as b; b.verify({signed!r})", True, id="verify-signed"),
])
def test_cryptography_loads_only_when_a_signature_is_checked(signed_mlp, unsigned_mlp, code, loads_crypto):
    loaded = _modules(code.format(signed=str(signed_mlp), unsigned=str(unsigned_mlp)))
    assert ("cryptography" in loaded) is loads_crypto
    assert "onnx" not in loaded and "rich" not in loaded
