"""Update throughput of a 10 MB bundle over MQTT vs publishing the same bytes with a bare paho loop.

    python benchmarks/ota_transfer.py [--mb 10] [--chunk-kib 256] [--rounds 2]

One invocation, one local mosquitto, alternating rounds:

* **bare**: a paho-mqtt 2 client publishes the bundle's bytes in ``--chunk-kib`` chunks, QoS 1,
  window 20, to a topic a second client subscribes to; timed until the subscriber has every byte.
* **ota**: ``edgeops.deploy.mqtt.flash_mqtt`` sends the same bundle to a real agent process
  (``edgeops agent run`` with an ``[ota]`` section trusting the signing key), which checks every
  chunk's sha256, assembles, verifies the signature, installs into the store's inactive slot,
  switches and health-checks (window 0.2 s). Timed end to end, until ``flash_mqtt`` returns
  ``committed``: the device-side work is part of what a user waits for.

The bundle holds an ONNX model with one Gemm of ``--mb`` MB of float32 weights (random, so it
does not compress), signed with a fresh Ed25519 key.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np


def make_bundle(tmp: str, mb: float) -> tuple[str, str]:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgeops.bundle import create, keygen

    n = int((mb * 1e6 / 4) ** 0.5)
    w = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    g = helper.make_graph([helper.make_node("Gemm", ["x", "w"], ["y"])], "big",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])], [numpy_helper.from_array(w, "w")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = os.path.join(tmp, "big.onnx")
    onnx.save(model, path)
    key, pub = keygen(os.path.join(tmp, "fleet"))
    bundle = os.path.join(tmp, "big-2.0.eob")
    create(path, bundle, name="big", version="2.0", key=key)
    return bundle, pub


def bare_round(url: str, data: bytes, chunk: int) -> float:
    import paho.mqtt.client as mqtt

    from edgeops.agent.transport import parse_url

    host, port, _ = parse_url(url)
    got, done, subscribed = [0], threading.Event(), threading.Event()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-sub", protocol=mqtt.MQTTv5)

    def on_message(c, u, m):  # noqa: ANN001
        got[0] += len(m.payload)
        if got[0] >= len(data):
            done.set()

    sub.on_message = on_message
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.on_connect = lambda c, *a: c.subscribe("bench/bare/#", qos=1)
    sub.connect(host, port)
    sub.loop_start()
    subscribed.wait(5)
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-pub", protocol=mqtt.MQTTv5)
    pub.max_inflight_messages_set(20)
    pub.connect(host, port)
    pub.loop_start()
    t0 = time.perf_counter()
    infos = [pub.publish(f"bench/bare/{i}", data[o:o + chunk], qos=1) for i, o in enumerate(range(0, len(data), chunk))]
    for info in infos:
        info.wait_for_publish(60)
    done.wait(120)
    seconds = time.perf_counter() - t0
    for c in (pub, sub):
        c.disconnect()
        c.loop_stop()
    return seconds


def ota_round(url: str, bundle: str, pub: str, tmp: str, chunk: int, k: int) -> float:
    from edgeops.deploy.mqtt import flash_mqtt

    store = os.path.join(tmp, f"store{k}")
    config = os.path.join(tmp, f"agent{k}.toml")
    with open(config, "w") as f:
        f.write(f'[broker]\nurl = "{url}"\n[device]\nfleet = "bench"\nid = "dev{k}"\n[telemetry]\ninterval_s = 60\n'
                f'[store]\ndir = "{store}"\n[ota]\ntrusted_keys = ["{pub}"]\nhealth_window_s = 0.2\n'
                f"chunk_size = {max(chunk, 262144)}\n")
    agent = subprocess.Popen([sys.executable, "-m", "edgeops", "agent", "run", "--config", config],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(2.0)  # the agent connects and subscribes
        t0 = time.perf_counter()
        result = flash_mqtt(bundle, url, "bench", f"dev{k}", chunk_size=chunk, progress=False, timeout=300)
        seconds = time.perf_counter() - t0
        if result["outcome"] != "committed":
            raise SystemExit(f"the update was not committed: {result}")
        return seconds
    finally:
        agent.terminate()
        agent.wait(20)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=10.0)
    ap.add_argument("--chunk-kib", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    from edgeops.agent.localbroker import LocalBroker

    chunk = args.chunk_kib * 1024
    with tempfile.TemporaryDirectory(prefix="edgeops-ota-bench-") as tmp, LocalBroker() as broker:
        bundle, pub = make_bundle(tmp, args.mb)
        data = open(bundle, "rb").read()
        print(f"bundle {len(data) / 1e6:.2f} MB, chunks of {args.chunk_kib} KiB, broker {broker.url}", file=sys.stderr)
        bare, ota = [], []
        for k in range(args.rounds):
            print(f"round {k + 1}/{args.rounds}", file=sys.stderr)
            bare.append(bare_round(broker.url, data, chunk))
            ota.append(ota_round(broker.url, bundle, pub, tmp, chunk, k))
    mb = len(data) / 1e6
    b, o = statistics.median(bare), statistics.median(ota)
    print(f"bare paho QoS 1 transfer        median {b:7.2f} s  {mb / b:7.1f} MB/s")
    print(f"edgeops flash (transfer+verify+install+health) median {o:7.2f} s  {mb / o:7.1f} MB/s")
    print(f"ota / bare throughput = {b / o:.3f}   per round: {', '.join(f'{x / y:.3f}' for x, y in zip(bare, ota))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
