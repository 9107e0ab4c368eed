"""End to end on the emulated Cortex-M4 (fixture ``emulated_device``: the demo firmware under qemu-system-arm -M
mps2-an386, UART0 on a TCP socket): the gateway on ``socket://``, a real mosquitto and the fleet store. The MCU
shows in ``edgeops fleet status`` with real inference counts, takes a signed update with a commit, and a broken
one with a revert."""

from __future__ import annotations

import json

from click.testing import CliRunner
from test_gateway import _flash, broker, keys, store, tseqs, wait_until  # noqa: F401 - shared fixtures
from test_gateway_host import INT8, _bundle, _shuffled_weights

from edgeops.bridge import wire
from edgeops.bridge.gateway import Gateway, GatewayOptions


def test_emulated_mcu_in_the_fleet_takes_an_update_and_reverts_a_broken_one(emulated_device, broker, store,  # noqa: F811
                                                                             keys, tmp_path):  # noqa: F811
    gw = Gateway(GatewayOptions(port=emulated_device.url, broker=broker.url, fleet="lab",
                                store_dir=str(tmp_path / "gw"), trusted_keys=(keys[0][1],), health_timeout_s=60,
                                request_timeout_s=2.0)).start()
    try:
        device = gw.device
        assert device and gw.hello.model_format == 1
        assert wait_until(lambda: len(tseqs(store, device)[0]) >= 3 and store.device("lab", device), 60)
        seen, rows = tseqs(store, device)
        got = [t for _, t in seen]
        assert got == list(range(got[0], got[0] + len(got)))
        assert rows[-1]["runtime"]["backend"] == "mcu" and rows[-1]["mcu"]["inferences"] > 0
        assert rows[-1]["inference"]["total"] == rows[-1]["mcu"]["inferences"]
        from edgeops.cli import cli

        out = CliRunner().invoke(cli, ["fleet", "status", "--db", str(tmp_path / "fleet.sqlite"), "--fleet", "lab",
                                       "--json"])
        assert out.exit_code == 0, out.output
        row = next(d for d in json.loads(out.output)["devices"] if d["device"] == device)
        assert row["state"] == "online" and row["rate_per_s"] > 0

        result = _flash(broker, _bundle(tmp_path, INT8.read_bytes(), keys[0][0], "2.0"), device, 180)
        assert result.outcome == "committed", result.reason
        assert wait_until(lambda: gw.publisher.model_info["version"] == "2.0", 20)

        result = _flash(broker, _bundle(tmp_path, _shuffled_weights(), keys[0][0], "bad"), device, 180)
        assert result.outcome == "rolled_back", result.reason
        hello = gw.link.request(wire.HelloReq())
        assert hello.model_version == "2.0" and hello.boot_flags & 1  # the committed update runs again
    finally:
        gw.stop()
