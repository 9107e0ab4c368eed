#!/usr/bin/env bash
# The device side on aarch64, under emulation: a Raspberry Pi OS-like Debian bookworm arm64 root
# (Python 3.11) run by qemu-user through binfmt_misc, with edgeops installed from this checkout the
# way the README tells a Raspberry Pi user to. It checks, inside the root:
#   - the README's Raspberry Pi rows: `pip install '.[tflite,onnx,agent,sign]'` (tflite-runtime, numpy<2)
#     and, where ai-edge-litert has an aarch64 wheel for that Python, `pip install '.[litert,onnx]'`;
#   - `edgeops --version` and `edgeops info` on every example model;
#   - that the example models (fp32 and int8, ONNX and TFLite) give the x86 numbers
#     (tools/aarch64/agree.py, same engine versions on both sides; the table is printed), and with
#     EDGEOPS_AARCH64_ZOO=DIR (a zoo built by `python -m benchmarks.zoo.build`) five real-size zoo models;
#   - the device-side tests: tests/runtime and tests/formats, and with EDGEOPS_AARCH64_FULL=1 also
#     tests/bench, tests/agent, tests/monitor and tests/deploy (mosquitto from the root's apt);
#   - `edgeops agent run --config examples/agent.toml` for a few seconds against a mosquitto.
# Timings under emulation say nothing about a Pi's speed; the phases are timed only to plan CI.
#
# Needs root, debootstrap, qemu-user-static and binfmt-support (installed with apt when missing).
# Exit 77 (and a plain message) when this host cannot run aarch64 binaries (no binfmt_misc);
# any other non-zero exit is a real failure. The root is cached in $EDGEOPS_AARCH64_CACHE
# (default /var/cache/edgeops-aarch64) and rebuilt when its recipe (build_root below, the suite,
# the packages) changes. Mounts are undone on every exit.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${EDGEOPS_AARCH64_CACHE:-/var/cache/edgeops-aarch64}
FULL=${EDGEOPS_AARCH64_FULL:-0}
MIRROR=${EDGEOPS_AARCH64_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm                      # Raspberry Pi OS 12 is bookworm: Python 3.11, glibc 2.36
PACKAGES=python3,python3-venv,ca-certificates,mosquitto
UNAVAILABLE=77

say() { printf '\n== aarch64: %s ==\n' "$*"; }
T0=$SECONDS
PHASE_START=$SECONDS
TIMES=()
phase() {  # phase NAME: close the previous phase's clock, start this one
  if [ -n "${PHASE:-}" ]; then TIMES+=("$PHASE $((SECONDS - PHASE_START)) s"); fi
  PHASE=$1; PHASE_START=$SECONDS; say "$1"
}

unavailable() { echo "aarch64 emulation is not available on this host: $*; skipping the aarch64 checks"; exit $UNAVAILABLE; }

[ "$(id -u)" = 0 ] || unavailable "not root (chroot, mount and binfmt_misc need it)"
[ "$(uname -m)" = x86_64 ] || unavailable "host is $(uname -m), this script emulates aarch64 on x86-64"
if ! command -v debootstrap >/dev/null || ! [ -x /usr/bin/qemu-aarch64-static ] || ! command -v update-binfmts >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap qemu-user-static binfmt-support >/dev/null
fi
if ! [ -e /proc/sys/fs/binfmt_misc/status ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || unavailable "cannot mount binfmt_misc"
fi
update-binfmts --enable qemu-aarch64 2>/dev/null || true
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] && grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 \
  || unavailable "the qemu-aarch64 binfmt handler cannot be registered"

# ---------------------------------------------------------------------------------------- the root
MOUNTS=()
PIDS=()
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount -R "${MOUNTS[$i]}" 2>/dev/null || umount -l "${MOUNTS[$i]}" 2>/dev/null || true; done
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mnt() {  # mnt TARGET MOUNT-ARGS...: mount and remember it for cleanup
  local target=$1; shift
  mount "$@" "$target"
  MOUNTS+=("$target")
}

# The emulated CPU is the Pi 4's Cortex-A72, not qemu's default "max" (every Arm extension, SVE and
# SME included): the instructions and HWCAPs a program sees are then those of the board. Under
# "max", LiteRT 2.3.0's XNNPACK picks int8 kernels no Pi 4 has and its int8 .tflite answers are
# noise (top-1 4 %); as a Cortex-A72 they match x86. EDGEOPS_AARCH64_CPU=cortex-a76 is a Pi 5.
export QEMU_CPU=${EDGEOPS_AARCH64_CPU:-cortex-a72}
in_root() {  # in_root COMMAND...: run in the root with a clean environment (no host pip settings)
  chroot "$ROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb PYTHONDONTWRITEBYTECODE=1 QEMU_CPU="$QEMU_CPU" \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
}

build_root() {  # build_root DIR: the root itself; its text (and SUITE, PACKAGES) key the cache
  debootstrap --arch=arm64 --variant=minbase --include="$PACKAGES" "$SUITE" "$1" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE/debootstrap.log"; echo "debootstrap failed (log: $CACHE/debootstrap.log)"; return 1; }
  # pip inside reaches the same index as the host: the host's CA file (copied on every run), and
  # only the settings that make sense there (the host's find-links and file:// indexes are x86)
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\ndefault-timeout = 180\ndisable-pip-version-check = 1\n' \
    >"$1/etc/pip.conf"
}
KEY=$( { declare -f build_root; echo "$SUITE $PACKAGES"; } | sha256sum | cut -c1-12)
ROOT=$CACHE/root-$KEY
OUT=$ROOT/work/out    # /work/out inside: versions, the .npz dumps, the agreement tables

phase "root (Debian $SUITE arm64, $ROOT)"
mkdir -p "$CACHE"
if ! [ -e "$ROOT/.complete" ]; then
  for old in "$CACHE"/root-*; do  # an older recipe's root, or a half-built one
    [ -e "$old" ] || continue
    if grep -q " $old/" /proc/mounts; then echo "$old is mounted (another run?): left alone"; else rm -rf "$old"; fi
  done
  build_root "$ROOT.tmp"
  mv "$ROOT.tmp" "$ROOT"
  touch "$ROOT/.complete"
else
  echo "reusing $ROOT (built $(date -r "$ROOT/.complete" '+%F %T'))"
fi
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
in_root /bin/true || unavailable "the root's aarch64 /bin/true does not run"

mnt "$ROOT/proc" -t proc proc
# qemu-user passes the host's x86 /proc/cpuinfo through; onnxruntime 1.32's cpuinfo cannot parse it
# and crashes creating a session. A Raspberry Pi 4's (Cortex-A72) goes over it.
mnt "$ROOT/proc/cpuinfo" --bind "$HERE/rpi4-cpuinfo"
mnt "$ROOT/sys" --rbind /sys
mount --make-rslave "$ROOT/sys"
mnt "$ROOT/dev" --rbind /dev
mount --make-rslave "$ROOT/dev"

# the checkout, as a user's clone would have it (no venvs, builds or git data)
rm -rf "$ROOT/work" && mkdir -p "$ROOT/work/edgeops" "$OUT"
tar -C "$REPO" --exclude=./.git --exclude='./.venv' --exclude='./.ci-venv*' --exclude=./build \
  --exclude='*.egg-info' --exclude=__pycache__ --exclude=.pytest_cache -cf - . | tar -C "$ROOT/work/edgeops" -xf -

# ------------------------------------------------------------------------------------- installing
phase "install: pip install '.[tflite,onnx,agent,sign]' (Raspberry Pi OS, Python 3.11)"
in_root /bin/bash -euc '
  cd /work/edgeops
  rm -rf /opt/edgeops-tflite && python3 -m venv /opt/edgeops-tflite
  /opt/edgeops-tflite/bin/pip install -q ".[tflite,onnx,agent,sign]" pytest onnx >/work/out/pip-tflite.log 2>&1 \
    || { tail -20 /work/out/pip-tflite.log; exit 1; }  # the README lines; pytest and onnx for the tests
  /opt/edgeops-tflite/bin/python - <<EOF
import platform, sys, numpy, tflite_runtime, onnxruntime
assert sys.version_info[:2] == (3, 11), sys.version
assert platform.machine() == "aarch64", platform.machine()
assert numpy.__version__ < "2", numpy.__version__
print("Python", platform.python_version(), platform.machine(), "numpy", numpy.__version__,
      "tflite-runtime", tflite_runtime.__version__, "onnxruntime", onnxruntime.__version__)
EOF
  /opt/edgeops-tflite/bin/pip freeze > /work/out/tflite-freeze.txt'

phase "install: pip install '.[litert,onnx]' where ai-edge-litert has an aarch64 wheel"
LITERT=0
if in_root /bin/bash -euc '
  cd /work/edgeops
  rm -rf /opt/edgeops-litert && python3 -m venv /opt/edgeops-litert
  if ! /opt/edgeops-litert/bin/pip download -q --no-deps --only-binary=:all: -d /tmp/litert-probe ai-edge-litert; then
    echo "no ai-edge-litert wheel for aarch64 / Python 3.11: the tflite-runtime row is the only one"; exit 3
  fi
  /opt/edgeops-litert/bin/pip install -q ".[litert,onnx]" >/work/out/pip-litert.log 2>&1 \
    || { tail -20 /work/out/pip-litert.log; exit 1; }
  /opt/edgeops-litert/bin/python -c "
import ai_edge_litert, numpy, edgeops
m = edgeops.load(\"examples/models/digits_mlp.tflite\")
assert \"litert\" in str(m.backend).lower(), m.backend
print(\"ai-edge-litert runs the .tflite examples; numpy\", numpy.__version__)"
  /opt/edgeops-litert/bin/pip freeze > /work/out/litert-freeze.txt'; then LITERT=1; else
  rc=$?; [ $rc = 3 ] || exit $rc
fi

# ------------------------------------------------------------------------------------------- CLI
phase "edgeops --version, edgeops info"
in_root /bin/bash -euc '
  cd /work/edgeops
  /opt/edgeops-tflite/bin/edgeops --version
  for m in examples/models/*.onnx examples/models/*.tflite; do /opt/edgeops-tflite/bin/edgeops info "$m" >/dev/null; echo "info $m: ok"; done'

# ------------------------------------------------------------------------------------- agreement
phase "agreement with x86 (same engine versions)"
pin() { grep -i "^$1==" "$OUT/$2" || true; }
host_venv() {  # host_venv NAME EXTRAS PINS...: an x86 venv with this checkout and the root's versions
  local name=$1 venv=$CACHE/x86-$1 extras=$2; shift 2
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  { "$venv/bin/python" -m pip install -q --upgrade pip \
      && "$venv/bin/python" -m pip install -q --force-reinstall --no-deps "$REPO" \
      && "$venv/bin/python" -m pip install -q "$REPO[$extras]" "$@"; } >"$OUT/x86-$name-pip.log" 2>&1 \
    || { tail -20 "$OUT/x86-$name-pip.log"; return 1; }
  echo "x86 venv $name: $("$venv/bin/python" -m pip freeze | grep -i -E '^(numpy|onnxruntime|tflite-runtime|ai-edge-litert)==' | tr '\n' ' ')"
}
# the x86 side: edgeops[convert] writes the int8 ONNX twins (target rpi4) and compares
host_venv convert "onnx,litert,convert" $(pin onnxruntime tflite-freeze.txt)
mkdir -p "$ROOT/work/out/int8"
"$CACHE/x86-convert/bin/python" "$REPO/tools/aarch64/agree.py" int8 "$ROOT/work/out/int8" >/dev/null
if [ -n "${EDGEOPS_AARCH64_ZOO:-}" ]; then  # a built model zoo: real-size models and their TFLite twins too
  "$CACHE/x86-convert/bin/python" "$REPO/tools/aarch64/agree.py" zoo "$EDGEOPS_AARCH64_ZOO" "$ROOT/work/out/int8" >/dev/null
fi
host_venv tflite "tflite,onnx" $(pin onnxruntime tflite-freeze.txt) $(pin tflite-runtime tflite-freeze.txt) $(pin numpy tflite-freeze.txt)
in_root /opt/edgeops-tflite/bin/python /work/edgeops/tools/aarch64/agree.py dump /work/out/aarch64-tflite.npz /work/out/int8 2>/dev/null
"$CACHE/x86-tflite/bin/python" "$REPO/tools/aarch64/agree.py" dump "$OUT/x86-tflite.npz" "$ROOT/work/out/int8" 2>/dev/null
echo "-- tflite-runtime venv (the README's Raspberry Pi OS row) --"
AGREE=0
"$CACHE/x86-convert/bin/python" "$REPO/tools/aarch64/agree.py" compare "$OUT/x86-tflite.npz" "$ROOT/work/out/aarch64-tflite.npz" \
  | tee "$OUT/agreement-tflite.md" || AGREE=1
if [ $LITERT = 1 ]; then
  host_venv litert "litert,onnx" $(pin onnxruntime litert-freeze.txt) $(pin ai-edge-litert litert-freeze.txt) $(pin numpy litert-freeze.txt)
  in_root /opt/edgeops-litert/bin/python /work/edgeops/tools/aarch64/agree.py dump /work/out/aarch64-litert.npz /work/out/int8 2>/dev/null
  "$CACHE/x86-litert/bin/python" "$REPO/tools/aarch64/agree.py" dump "$OUT/x86-litert.npz" "$ROOT/work/out/int8" 2>/dev/null
  echo "-- LiteRT venv --"
  "$CACHE/x86-convert/bin/python" "$REPO/tools/aarch64/agree.py" compare "$OUT/x86-litert.npz" "$ROOT/work/out/aarch64-litert.npz" \
    | tee "$OUT/agreement-litert.md" || AGREE=1
fi
[ $AGREE = 0 ] || { echo "aarch64 and x86 disagree (tables above)"; exit 1; }

# ------------------------------------------------------------------------------------------ tests
SUITES="tests/runtime tests/formats"
CRASH_CASES=${EDGEOPS_CRASH_CASES:-200}  # mutated .tflite files per model and interpreter (1000 natively)
if [ "$FULL" = 1 ]; then
  SUITES="$SUITES tests/bench tests/agent tests/monitor tests/deploy"
  CRASH_CASES=${EDGEOPS_CRASH_CASES:-1000}
fi
phase "tests in the root: $SUITES"
# tests/formats/interpreter_batch.py caps its address space at 4 GiB so that a mutant's huge tensor
# is a MemoryError; qemu-user does not apply a guest's setrlimit(RLIMIT_AS), so the cap is put on
# qemu itself, from outside (8 GiB: the emulator's own mappings count too)
# shellcheck disable=SC2086
in_root EDGEOPS_CRASH_CASES="$CRASH_CASES" EDGEOPS_CRASH_BATCH_TIMEOUT=1800 /bin/bash -euc \
  "ulimit -v 8388608; cd /work/edgeops && /opt/edgeops-tflite/bin/python -m pytest -q -p no:cacheprovider $SUITES"

# ------------------------------------------------------------------------------------------ agent
phase "edgeops agent run --config examples/agent.toml against a mosquitto in the root"
CONFIG=examples/agent.toml
PORT=1883
if (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; then  # 1883 taken here: the same file on a free port
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  sed "s#127.0.0.1:1883#127.0.0.1:$PORT#" "$ROOT/work/edgeops/examples/agent.toml" >"$ROOT/work/edgeops/examples/agent-$PORT.toml"
  CONFIG=examples/agent-$PORT.toml
  echo "127.0.0.1:1883 is in use on this host: the example's config on port $PORT instead"
fi
in_root /usr/sbin/mosquitto -p "$PORT" >"$OUT/mosquitto.log" 2>&1 &
PIDS+=($!)
in_root /bin/bash -euc "
  cd /work/edgeops
  for i in \$(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.2; done
  /opt/edgeops-tflite/bin/python - <<EOF
import json, subprocess, sys, threading
import paho.mqtt.client as mqtt
got = []
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
c.on_message = lambda cl, u, msg: got.append(json.loads(msg.payload))
c.connect('127.0.0.1', $PORT); c.subscribe('edgeops/demo/pi-01/telemetry', qos=1); c.loop_start()
agent = subprocess.run(['/opt/edgeops-tflite/bin/edgeops', 'agent', 'run', '--config', '$CONFIG', '--duration', '8'])
c.loop_stop()
assert agent.returncode == 0, agent.returncode
assert got, 'no telemetry arrived'
t = got[-1]
print(len(got), 'telemetry message(s); last: model', t['model']['name'], t['model']['version'],
      'inferences', t['inference']['count'], 'machine', t.get('runtime', {}).get('machine', '?'))
EOF"

phase done
say "timings (emulated: not a measure of device speed)"
printf '  %s\n' "${TIMES[@]}" "total $((SECONDS - T0)) s"
