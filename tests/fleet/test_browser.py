"""The fleet page in a real browser (playwright driving Chromium) over a real collector fed by real agents.

Two ``edgeops agent run`` processes publish telemetry every 0.5 s to a real mosquitto; ``FleetServer``
(what ``edgeops fleet serve`` runs: the collector into sqlite, the alert loop with an offline rule of
4 s, the page) serves the page, which polls the API. Killing one agent (SIGKILL: the broker publishes its last
will) must turn its row red within the offline rule's time, and so must freezing the other (SIGSTOP: no
will, no telemetry, red by the telemetry's age); the device page's charts must hold exactly the points
the store has; the offline rule's alert must be on the alerts page; on a phone-sized viewport the
device list must fit without scrolling sideways.

Set ``EDGEOPS_SCREENSHOTS=/some/dir`` to keep the screenshots (fleetweb-*.png) for a look.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fleet.webutil import Site

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "examples" / "models"
CHROMIUM = "/usr/bin/chromium"
FLEET = "webtest"
INTERVAL_S = 0.5
OFFLINE_AFTER_S = 4.0  # the offline rule of this test: no telemetry for 4 s (8 intervals), or the last will
RULES = f"""
[rules.offline]
kind = "offline"
after = "{OFFLINE_AFTER_S:g}s"
severity = "critical"
"""
POLL_S = 2.0  # how often the device list polls (app.js POLL_MS.devices)

pytestmark = pytest.mark.slow


def _need_browser():
    """playwright's ``sync_playwright``, or a skip that says what is missing."""
    api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    pytest.importorskip("onnxruntime", reason="the agents serve an ONNX model")
    return api.sync_playwright


def start_agent(tmp_path: Path, broker_url: str, device: str, keepalive: int) -> subprocess.Popen:
    config = tmp_path / f"{device}.toml"
    config.write_text(f"""
[broker]
url = "{broker_url}"
keepalive = {keepalive}
[device]
fleet = "{FLEET}"
id = "{device}"
[telemetry]
interval_s = {INTERVAL_S}
[store]
dir = "{tmp_path / ('store-' + device)}"
[model]
path = "{MODELS / 'digits_mlp.onnx'}"
name = "digits"
version = "1.0"
[workload]
data = "{MODELS / 'digits_mlp_test.npz'}"
rate_hz = 20
""")
    log = open(tmp_path / f"{device}.log", "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([sys.executable, "-m", "edgeops", "agent", "run", "--config", str(config), "--duration", "90"],
                            stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT),
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def wait_until(predicate, timeout: float, what: str, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def keep(page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"fleetweb-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 1000
    if os.environ.get("EDGEOPS_SCREENSHOTS"):
        shutil.copy(path, Path(os.environ["EDGEOPS_SCREENSHOTS"]) / path.name)


def test_the_page_follows_a_live_fleet(broker, tmp_path):
    sync_playwright = _need_browser()
    from edgeops.fleet.server import FleetServer, ServerOptions

    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    server = FleetServer(ServerOptions(broker=broker.url, fleet=FLEET, db=str(tmp_path / "fleet.db"),
                                       http="127.0.0.1:0", rules=str(rules), batch_ms=50, alerts_every_s=0.5)).start()
    store, web = server.store, Site(server.url)
    agents: dict[str, subprocess.Popen] = {}
    try:
        assert server.wait_ready(10), "the collector did not subscribe"
        assert web.json("/healthz")[0] == 200
        # pi-02's broker notices a dead connection within 3 s (its last will); pi-01's only after 90 s, so
        # when pi-01 freezes it is the telemetry's age that turns it red
        agents.update({d: start_agent(tmp_path, broker.url, d, k) for d, k in (("pi-01", 60), ("pi-02", 2))})

        def both_reporting():
            rows = {d["id"]: d for d in web.json("/api/devices")[1]}
            return all(rows.get(d, {}).get("state") == "online" and len(store.telemetry(FLEET, d)) >= 3 for d in agents)

        try:
            wait_until(both_reporting, 40, "both agents online with 3 messages stored")
        except AssertionError:
            logs = {d: (tmp_path / f"{d}.log").read_text(errors="replace")[-2000:] for d in agents}
            raise AssertionError(f"agents did not report: {logs}") from None

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                _offline_turns_red(browser, web, agents, tmp_path)
                _the_alert_fires(browser, web, tmp_path)
                _chart_has_the_stored_points(browser, web, store, tmp_path)
                _fits_a_phone(browser, web, tmp_path)
                _silence_turns_red(browser, web, agents)
            finally:
                browser.close()
    finally:
        for proc in agents.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
        for proc in agents.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        server.stop()


def _offline_turns_red(browser, web, agents, tmp_path):
    page = browser.new_page(viewport={"width": 1200, "height": 700})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(web.url + "/")
    for device in agents:
        page.wait_for_selector(f'tr[data-device="{device}"][data-state="online"]', timeout=10_000)
    row = page.locator('tr[data-device="pi-02"] td').first
    assert row.evaluate("td => getComputedStyle(td).backgroundColor") in ("rgb(255, 255, 255)", "rgba(0, 0, 0, 0)")

    agents["pi-02"].send_signal(signal.SIGKILL)  # no clean goodbye: the broker publishes the last will
    killed = time.monotonic()
    page.wait_for_selector('tr[data-device="pi-02"][data-state="offline"]', timeout=(OFFLINE_AFTER_S + POLL_S + 6) * 1000)
    took = time.monotonic() - killed
    assert took <= OFFLINE_AFTER_S + POLL_S + 2, f"red after {took:.1f} s, the rule says {OFFLINE_AFTER_S} s"
    assert row.evaluate("td => getComputedStyle(td).backgroundColor") == "rgb(253, 236, 234)"  # the offline red
    badge = page.locator('tr[data-device="pi-02"] .badge')
    assert badge.inner_text() == "offline" and badge.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(198, 40, 40)"
    assert page.locator('tr[data-device="pi-01"]').get_attribute("data-state") == "online"
    assert "2 devices · 1 online · 1 offline" in page.locator("#counts").inner_text()
    keep(page, tmp_path, "index")
    assert errors == []
    page.close()


def _the_alert_fires(browser, web, tmp_path):
    """The offline rule fires for pi-02: the alerts page lists it first, and its row on / names it."""
    page = browser.new_page(viewport={"width": 1200, "height": 500})
    page.goto(web.url + "/alerts")
    page.wait_for_selector('tr[data-rule="offline"][data-device="pi-02"][data-state="firing"]', timeout=10_000)
    assert page.locator("tbody tr").first.get_attribute("data-device") == "pi-02"
    assert page.locator('tr[data-device="pi-02"] .badge').inner_text() == "firing"
    keep(page, tmp_path, "alerts")
    page.goto(web.url + "/")
    page.wait_for_selector('tr[data-device="pi-02"] td[data-col="alerts"] .alerts', timeout=10_000)
    assert page.locator('tr[data-device="pi-02"] td[data-col="alerts"]').inner_text() == "offline"
    assert page.locator('tr[data-device="pi-01"] td[data-col="alerts"]').inner_text() == "—"
    page.close()


def _chart_points(page, metric):
    line = page.locator(f'polyline[data-metric="{metric}"]')
    ts, values = line.get_attribute("data-ts"), line.get_attribute("data-values")
    return [(int(t), float(v)) for t, v in zip(ts.split(","), values.split(","))] if ts else []


def _chart_has_the_stored_points(browser, web, store, tmp_path):
    page = browser.new_page(viewport={"width": 1200, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    opened = int(time.time() * 1000)
    page.goto(web.url + "/device/pi-01?window=15m")
    page.wait_for_selector('polyline[data-metric="p95_ms"][data-ts]', timeout=10_000)
    newest = _chart_points(page, "p95_ms")[-1][0]
    for metric in ("p95_ms", "rate_per_s", "errors", "max_psi", "temperature_c", "cpu_percent"):
        shown = _chart_points(page, metric)
        # temperature is null where the machine has no thermal sensor: then both sides are empty
        assert len(shown) >= 3 or metric == "temperature_c", f"{metric}: only {len(shown)} points"
        # the store keeps growing while we look: compare everything up to the newest point the chart shows
        stored = [(r["ts"], float(r[metric])) for r in store.telemetry(FLEET, "pi-01", since_ms=opened - 15 * 60_000)
                  if r[metric] is not None and r["ts"] <= newest]
        assert shown == stored, metric
        dots = page.locator(f'svg[data-metric="{metric}"] circle.pt')
        assert dots.count() == len(shown)
        assert [(int(d.get_attribute("data-ts")), float(d.get_attribute("data-value"))) for d in dots.all()] == shown
    keep(page, tmp_path, "device")

    page.select_option("#window", "24h")
    page.wait_for_function("() => location.search.includes('window=24h')")
    page.wait_for_function("n => document.querySelector('polyline[data-metric=\"p95_ms\"]')"
                           ".getAttribute('data-ts').split(',').length >= n", arg=len(_chart_points(page, "p95_ms")))
    assert errors == []
    page.close()


def _fits_a_phone(browser, web, tmp_path):
    page = browser.new_page(viewport={"width": 375, "height": 740}, device_scale_factor=2, is_mobile=True,
                            has_touch=True)
    page.goto(web.url + "/")
    page.wait_for_selector('tr[data-device="pi-01"]', timeout=10_000)
    width = page.evaluate("window.innerWidth")
    assert width == 375
    assert page.evaluate("document.documentElement.scrollWidth") <= width, "the list scrolls sideways on a phone"
    for box in page.locator("tr[data-device]").evaluate_all("rows => rows.map(r => r.getBoundingClientRect().right)"):
        assert box <= width
    assert page.locator("thead").first.evaluate("h => h.getBoundingClientRect().height") <= 1, "cards, not a table"
    keep(page, tmp_path, "phone")
    for path, ready, name in [("/device/pi-01", 'polyline[data-metric="p95_ms"]', "phone-device"),
                              ("/alerts", "tr[data-rule]", "phone-alerts")]:
        page.goto(web.url + path)
        page.wait_for_selector(ready, timeout=10_000)
        assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{path} scrolls sideways on a phone"
        keep(page, tmp_path, name)
    page.close()


def _silence_turns_red(browser, web, agents):
    """A frozen agent keeps its connection (no last will for 90 s) but sends nothing: the age rule."""
    page = browser.new_page(viewport={"width": 1200, "height": 700})
    page.goto(web.url + "/")
    page.wait_for_selector('tr[data-device="pi-01"][data-state="online"]', timeout=10_000)
    agents["pi-01"].send_signal(signal.SIGSTOP)
    frozen = time.monotonic()
    page.wait_for_selector('tr[data-device="pi-01"][data-state="offline"]', timeout=(OFFLINE_AFTER_S + POLL_S + 6) * 1000)
    took = time.monotonic() - frozen
    assert took <= OFFLINE_AFTER_S + POLL_S + 2, f"red after {took:.1f} s, the rule says {OFFLINE_AFTER_S} s"
    row = {d["id"]: d for d in web.json("/api/devices")[1]}["pi-01"]
    assert row["status"] == "online" and row["telemetry_age_s"] > OFFLINE_AFTER_S, "red by age, not by a last will"
    assert row["offline_after_s"] == OFFLINE_AFTER_S, "the threshold is the offline rule's"
    page.close()
