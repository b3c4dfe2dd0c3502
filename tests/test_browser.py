"""End to end in a real browser: the app served on 127.0.0.1, Debian's chromium driven by Playwright
(never `playwright install`). Steps two-moons twice, checks that the plotly charts drew and the stage
counter moved, box-selects a batch for "Pick your own", opens every view page, and saves screenshots
under test-artifacts/ (gitignored).

Skipped when chromium or playwright is absent, unless CI=true (then it fails: CI must run it)."""
import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
sys.path.insert(0, str(ROOT))
from bench.bench_browser import CHROMIUM_ARGS, COUNTER_JS, IDLE, free_port, start_server, wait_healthy  # noqa: E402

IN_CI = os.environ.get("CI", "").lower() == "true"


def _require(condition: bool, reason: str) -> None:
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the browser test must run)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium")
    _require(path is not None, "Debian's chromium is not installed (scripts/ensure_chromium.sh installs it)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _require(False, "the playwright package is not installed")
    return path


@pytest.fixture(scope="module")
def app_url():
    port = free_port()
    audits = ARTIFACTS / "audits"  # the claims test runs a fresh audit: nothing cached from an earlier run
    shutil.rmtree(audits, ignore_errors=True)
    server = start_server(port, {"TAVAAL_WARMUP_DELAY": "5", "TAVAAL_AUDITS_DIR": str(audits)})
    try:
        wait_healthy(port, timeout=90)
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
        out = ""
        if server.stdout:
            # Non-blocking: a child the server spawned (the UMAP warm-up worker, which outlives a killed server)
            # inherits this pipe, and a blocking read would wait for it forever.
            os.set_blocking(server.stdout.fileno(), False)
            try:
                out = (server.stdout.read() or b"").decode(errors="replace")
            except (BlockingIOError, OSError):
                pass
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "browser-server.log").write_text(out)


@pytest.fixture(scope="module")
def page(chromium, app_url):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.set_default_timeout(90_000)
        pg.goto(app_url, wait_until="domcontentloaded")
        yield pg
        browser.close()


@contextlib.contextmanager
def new_window(page, timeout_ms: int):
    """A page in a browser context of its own (no cookies or session shared with ``page``): a link pasted in a
    new window."""
    other = page.context.browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        pg = other.new_page()
        pg.set_default_timeout(timeout_ms)
        yield pg
    finally:
        other.close()


def settle(pg) -> None:
    pg.wait_for_timeout(300)
    pg.wait_for_selector(IDLE)
    pg.wait_for_timeout(300)


def counter(pg) -> str | None:
    return pg.evaluate(COUNTER_JS)


def drawn_charts(pg) -> int:
    """Plotly charts whose SVG holds drawn points (not just an empty frame)."""
    return pg.evaluate("""() => [...document.querySelectorAll('[data-testid="stPlotlyChart"]')]
        .filter(c => c.querySelector('.main-svg')
                     && c.querySelectorAll('.scatterlayer .point, .scatterlayer path.js-line, .barlayer path').length)
        .length""")


def errors_on(pg) -> list[str]:
    return pg.locator('[data-testid="stException"], [data-testid="stAlertContentError"]').all_inner_texts()


def test_two_moons_steps_twice_in_the_browser(page):
    pg = page
    pg.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg', state="visible")
    settle(pg)
    assert counter(pg) == "0 of 30"
    assert drawn_charts(pg) == 1
    pg.screenshot(path=str(ARTIFACTS / "moons-0-initial.png"))
    for expected in ("1 of 30", "2 of 30"):
        t = time.perf_counter()
        pg.get_by_role("button", name="Step", exact=True).click()
        pg.wait_for_function(f"() => ({COUNTER_JS})() === '{expected}'")
        settle(pg)
        print(f"step to {expected}: {time.perf_counter() - t:.2f} s")
    assert counter(pg) == "2 of 30"
    assert drawn_charts(pg) == 1
    # four panels, each with picks drawn as crosses
    assert pg.locator('[data-testid="stPlotlyChart"] .cartesianlayer > .subplot').count() == 4
    assert pg.locator('[data-testid="stPlotlyChart"] .scatterlayer path.point').count() > 1000
    assert not errors_on(pg)
    pg.screenshot(path=str(ARTIFACTS / "moons-2-stepped.png"), full_page=True)


def test_pick_your_own_by_box_selection(page):
    pg = page
    pg.get_by_text("Pick your own batch and compare it with the methods'").click()
    settle(pg)
    chart = pg.locator('[data-testid="stPlotlyChart"]').nth(1)
    chart.scroll_into_view_if_needed()
    # the chart opens in box-select mode: a drag across the middle of the plot selects a batch
    box = chart.locator(".nsewdrag").first.bounding_box()
    x0, y0 = box["x"] + box["width"] * 0.35, box["y"] + box["height"] * 0.3
    pg.mouse.move(x0, y0)
    pg.mouse.down()
    pg.mouse.move(x0 + box["width"] * 0.25, y0 + box["height"] * 0.35, steps=8)
    pg.mouse.up()
    pg.wait_for_selector('[data-testid="stDataFrame"]', timeout=60_000)
    settle(pg)
    assert not errors_on(pg)
    pg.screenshot(path=str(ARTIFACTS / "moons-3-pick-your-own.png"), full_page=True)


@pytest.mark.parametrize("label, charts", [
    ("Feature map", 1), ("Discriminator", 1), ("Loss vs likelihood", 2), ("Class balance", 2),
    ("Learning curves", 1),
])
def test_view_pages_draw_in_the_browser(page, label, charts):
    pg = page
    pg.locator('[data-testid="stSidebarNav"] a').get_by_text(label, exact=True).click()
    settle(pg)
    pg.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg', state="visible")
    assert drawn_charts(pg) >= charts
    assert not errors_on(pg)
    pg.screenshot(path=str(ARTIFACTS / f"view-{label.lower().replace(' ', '-')}.png"), full_page=True)


# -- teaching: why was this picked, links that reopen the same state, the guided lesson ---------------------
PICKS_JS = """() => {
  // every drawn pick (black cross) of the panels: method and data coordinates, sorted
  const gd = [...document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot')]
    .find(gd => gd._fullData && gd._fullData.some(t => t.meta && t.meta.role === 'picks'));
  const out = [];
  for (const t of gd._fullData) {
    if (!t.meta || t.meta.role !== 'picks') continue;
    for (let i = 0; i < t.x.length; i++) out.push(`${t.meta.method}:${(+t.x[i]).toFixed(4)}:${(+t.y[i]).toFixed(4)}`);
  }
  return out.sort();
}"""
# Pixel position of the first pick of the first panel (plotly's own axis mapping), to click it like a user.
PANELS_WITH_PICKS_JS = """() => [...document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot')]
  .some(gd => gd._fullData && gd._fullData.some(t => t.meta && t.meta.role === 'picks'))"""
FIRST_PICK_JS = """() => {
  const gd = [...document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot')]
    .find(gd => gd._fullData && gd._fullData.some(t => t.meta && t.meta.role === 'picks'));
  const t = gd._fullData.find(t => t.meta && t.meta.role === 'picks');
  const xa = gd._fullLayout[t.xaxis.replace('x', 'xaxis')], ya = gd._fullLayout[t.yaxis.replace('y', 'yaxis')];
  const box = gd.querySelector('.main-svg').getBoundingClientRect();
  return {x: box.left + xa._offset + xa.l2p(t.x[0]), y: box.top + ya._offset + ya.l2p(t.y[0]), method: t.meta.method};
}"""


def open_sidebar_page(pg, label: str) -> None:
    pg.locator('[data-testid="stSidebarNav"] a').get_by_text(label, exact=True).click()
    settle(pg)


# A playground state opened by its link (small epochs keep it quick): two stages stepped, stage 1 shown.
MOONS_LINK = "?methods=random,coreset,vaal,tavaal&epochs=40&vae_epochs=10&seed=0&stepped=2&stage=1"


def test_click_a_pick_on_two_moons_to_see_why(page, app_url):
    pg = page
    pg.goto(app_url + MOONS_LINK, wait_until="domcontentloaded")
    pg.wait_for_function(f"() => ({COUNTER_JS})() === '2 of 30'")
    settle(pg)
    pg.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg', state="visible")
    pg.wait_for_function(PANELS_WITH_PICKS_JS)
    pg.locator('[data-testid="stPlotlyChart"]').first.scroll_into_view_if_needed()
    pick = pg.evaluate(FIRST_PICK_JS)
    pg.mouse.click(pick["x"], pick["y"])
    panel = pg.locator(".st-key-why_panel")
    panel.wait_for(state="visible", timeout=60_000)
    settle(pg)
    text = panel.inner_text()
    assert "Why was #" in text and " picked #" in text and "(1st of its 10 picks at stage 1)" in text, text
    assert "?why=" in pg.url or "&why=" in pg.url
    # its rank under every other method, from a what-if computed on demand
    panel.get_by_role("button", name="Compute its rank under these methods").click()
    settle(pg)
    import re

    panel.locator('[data-testid="stTable"]').nth(1).wait_for(state="visible")
    table = panel.locator('[data-testid="stTable"]').nth(1).inner_text()
    assert "TA-VAAL" in table and "Entropy" in table and re.search(r"\d+ of \d+", table), table
    assert not errors_on(pg)
    panel.scroll_into_view_if_needed()
    pg.screenshot(path=str(ARTIFACTS / "moons-4-why.png"), full_page=True)


def test_a_copied_link_reopens_the_same_state_in_a_new_browser(page):
    pg = page  # still on the playground the previous test opened by its link
    pg.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg', state="visible")
    pg.context.grant_permissions(["clipboard-read", "clipboard-write"])
    button = pg.locator("button.tavaal-copy-link")
    button.click()
    pg.wait_for_function("() => document.querySelector('button.tavaal-copy-link').dataset.copied")
    link = pg.evaluate("() => navigator.clipboard.readText()")
    assert link == button.get_attribute("data-link") and "stepped=2" in link and "stage=1" in link, link
    before = {"counter": counter(pg), "picks": pg.evaluate(PICKS_JS),
              "methods": pg.locator('[data-testid="stMultiSelect"]').first.inner_text()}
    with new_window(pg, 180_000) as fresh:
        fresh.goto(link, wait_until="domcontentloaded")
        fresh.wait_for_function(f"() => ({COUNTER_JS})() === '{before['counter']}'")
        settle(fresh)
        fresh.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg', state="visible")
        after = {"counter": counter(fresh), "picks": fresh.evaluate(PICKS_JS),
                 "methods": fresh.locator('[data-testid="stMultiSelect"]').first.inner_text()}
        assert after == before
        assert fresh.locator(".st-key-why_panel").count() == 1  # the explained sample came along
        assert not errors_on(fresh)
        fresh.screenshot(path=str(ARTIFACTS / "moons-5-from-link.png"), full_page=True)


def test_a_page_opened_by_its_address_has_the_apps_navigation(page, app_url):
    with new_window(page, 120_000) as pg:
        pg.goto(app_url + "explorer", wait_until="domcontentloaded")
        settle(pg)
        nav = pg.locator('[data-testid="stSidebarNav"]').inner_text()
        assert "Stage explorer" in nav and "Guided lesson" in nav and "class balance" not in nav, nav
        assert pg.locator("h1").first.inner_text() == "Stage explorer"
        assert pg.get_by_text("Deploy", exact=True).count() == 0  # toolbarMode: viewer


def test_walk_the_lesson_with_next_in_presenter_mode(page, app_url):
    from explorer_ui.lesson import STEPS

    with new_window(page, 180_000) as pg:
        pg.goto(app_url + "lesson?present=1", wait_until="domcontentloaded")
        settle(pg)
        assert pg.locator('[data-testid="stExpandSidebarButton"]').is_visible()  # presenter: sidebar collapsed
        for i, step in enumerate(STEPS):
            pg.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg', state="visible")
            assert f"{i + 1}. {step.title}" in pg.locator("h3").all_inner_texts()
            assert f"step={i + 1}" in pg.url and "present=1" in pg.url
            assert not errors_on(pg)
            pg.screenshot(path=str(ARTIFACTS / f"lesson-{i + 1}-{step.slug}.png"), full_page=True)
            if i < len(STEPS) - 1:
                pg.get_by_role("button", name="Next").click()
                pg.wait_for_function(f"() => location.search.includes('step={i + 2}')")
                settle(pg)
        assert pg.get_by_role("button", name="Next").is_disabled()


# Last: it opens /claims by its address, a new Streamlit session, so the stepped two-moons session the
# tests above share is left alone.
def test_paper_claims_runs_an_audit_in_the_background_and_draws_its_verdict(page, app_url):
    """Opened by its link with the settings in the URL (a small two-moons Fig. 1 audit); Run starts the audit
    as a background process, the progress bar follows it, and the verdict's chart draws when it ends."""
    pg = page
    settle(pg)  # the app's navigation must have run once: a fresh server's first deep link lists pages/ instead
    query = "claim=fig1&seeds=2&set=task_epochs%3D5&set=vae_epochs%3D2&set=stages%3D2"
    pg.goto(f"{app_url}claims?{query}", wait_until="domcontentloaded")
    settle(pg)
    assert pg.get_by_role("heading", name="Paper claims").count() == 1
    pg.get_by_role("button", name="Run the audit (2 seeds)").click()
    pg.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg', state="visible", timeout=240_000)
    settle(pg)
    assert drawn_charts(pg) >= 1
    text = pg.locator('[data-testid="stMain"]').inner_text()
    assert any(v in text for v in ("holds", "mixed", "does not hold"))
    assert not errors_on(pg)
    pg.screenshot(path=str(ARTIFACTS / "claims-fig1.png"), full_page=True)
