"""The page's Rollouts panel in a real browser (playwright driving Chromium) over rollout rows written as the
controller writes them into a real sqlite store: the list newest first, the stage, the devices per state, a gate
with its value and threshold, why a rollout halted (as text, never as markup), and picking another rollout."""

from __future__ import annotations

import os

import pytest

from edgeops.fleet.store import open_store
from tests.fleet.rolloututil import make_rollout
from tests.fleet.webutil import Served, now_ms

CHROMIUM = "/usr/bin/chromium"
FLEET = "demo"
REASON = 'gate p95_ratio<=1.2 failed: 1.87 <script>window.pwned = 1</script><img src=x onerror="window.pwned=2">'

pytestmark = pytest.mark.slow


@pytest.fixture
def browser():
    api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def served(tmp_path):
    with open_store(str(tmp_path / "fleet.sqlite")) as store:
        s = Served(store, FLEET)
        yield store, s
        s.close()


def test_the_rollouts_panel_shows_stage_devices_gates_and_why_it_halted(browser, served):
    store, web = served
    t = now_ms()
    make_rollout(store, FLEET, "r-good", created=t - 60_000, state="completed", stage=1, stages="canary,stable",
                 values={"p95_ratio": 0.9}, devices={"pi-01": "updated", "pi-02": "updated", "pi-03": "updated"})
    make_rollout(store, FLEET, "r-bad", created=t, state="halted", stage=1, reason=REASON,
                 values={"p95_ratio": 1.87, "offline": 0.0},
                 devices={"pi-01": "updated", "pi-02": "rolled_back", "pi-03": "rolled_back", "pi-04": "pending",
                          "pi-05": "failed"})
    page = browser.new_page(viewport={"width": 1200, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(web.url + "/")
    page.wait_for_selector("#rollout-detail", timeout=10_000)

    rows = page.locator("#rollouts-list tbody tr")
    assert [r.get_attribute("data-rollout") for r in rows.all()] == ["r-bad", "r-good"]
    bad = page.locator('#rollouts-list tr[data-rollout="r-bad"]')
    assert bad.locator('td[data-col="state"] .badge').inner_text() == "halted"
    assert bad.locator('td[data-col="stage"]').inner_text() == "stage 2/4 · 10 %"
    assert bad.locator('td[data-col="bundle"]').inner_text() == "digits 2.0"

    detail = page.locator("#rollout-detail")
    assert detail.get_attribute("data-rollout") == "r-bad"  # the newest one, until another is picked
    counts = {li.get_attribute("data-state"): int(li.locator(".n").inner_text())
              for li in page.locator("#rollout-counts li").all()}
    assert counts == {"pending": 1, "updated": 1, "failed": 1, "rolled_back": 2}
    widths = page.locator(".rollout-bar .seg").evaluate_all("s => s.map(x => parseFloat(x.style.width))")
    assert sorted(widths) == pytest.approx([20, 20, 20, 40])

    gate = page.locator('#rollout-gates tr[data-metric="p95_ratio"]')
    assert gate.get_attribute("data-ok") == "failing"
    assert gate.locator('td[data-col="threshold"]').inner_text() == "p95_ratio<=1.2"
    assert gate.locator('td[data-col="value"]').inner_text() == "1.870"
    assert page.locator('#rollout-gates tr[data-metric="offline"]').get_attribute("data-ok") == "ok"
    assert page.locator('#rollout-gates tr[data-metric="psi_in"] td[data-col="status"]').inner_text() == "no data"

    reason = page.locator("#rollout-reason")
    assert reason.is_visible()
    assert reason.locator(".why").inner_text() == REASON  # the markup is shown as text
    assert reason.locator("script, img").count() == 0 and page.locator("#rollouts img").count() == 0
    assert page.evaluate("window.pwned") is None

    page.locator('#rollouts-list tr[data-rollout="r-good"] a.rollout-pick').click()
    page.wait_for_selector('#rollout-detail[data-rollout="r-good"]', timeout=5_000)
    assert page.locator("#rollout-reason").count() == 0
    assert page.locator('#rollouts-list tr[data-rollout="r-good"] td[data-col="stage"]').inner_text() == "stage 2/2 · stable"
    assert {li.get_attribute("data-state"): li.locator(".n").inner_text()
            for li in page.locator("#rollout-counts li").all()} == {"updated": "3"}
    assert page.locator('#rollout-gates tr[data-metric="p95_ratio"]').get_attribute("data-ok") == "ok"

    # the panel polls: a new state shows up without a reload, and the picked rollout stays picked
    row = store.rollout("r-good")
    store.put_rollout(dict(row, state="aborted", reason="aborted by the operator", updated=now_ms()))
    page.wait_for_selector('#rollouts-list tr[data-rollout="r-good"][data-state="aborted"]', timeout=10_000)
    assert page.locator("#rollout-detail").get_attribute("data-rollout") == "r-good"
    assert page.locator("#rollout-reason .why").inner_text() == "aborted by the operator"
    assert errors == []
    page.close()


def test_no_rollouts_no_panel(browser, served):
    _, web = served
    page = browser.new_page()
    page.goto(web.url + "/")
    page.wait_for_selector("#counts:not(:empty)", timeout=10_000)
    page.wait_for_timeout(300)
    assert page.locator("#rollouts").is_hidden()
    page.close()
