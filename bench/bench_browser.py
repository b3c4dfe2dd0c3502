"""Measure the two-moons page (or the Stage explorer) in a real browser (Debian's chromium driven by Playwright).

Prints: first paint (page opened -> first plotly chart drawn) on a freshly started server, and the time of
one Step with the default methods (click -> script idle with the stage counter moved), for a few Steps.

    PYTHONPATH=. python bench/bench_browser.py [--steps 3] [--port 0] [--url http://127.0.0.1:8501/]
    PYTHONPATH=. python bench/bench_browser.py --page explorer --dataset mnist5k --steps 3

``--page explorer`` opens the Stage explorer on ``--dataset`` through its link (``/explorer?dataset=...``)
with its four default methods, prints the cost the page announces before the first Step, then times Steps
(target: under 10 s on MNIST-5k on the 2-core CPU). CPU seconds of the server are printed beside each
wall time: on a machine shared with other work they are what an idle machine would take, or close.

With ``--url`` it measures an app already running there (first paint is then not a cold start).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                 "--disable-dev-shm-usage"]
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
CHART = '[data-testid="stPlotlyChart"] .main-svg'
# The stage counter: the metric labelled "Stages stepped" (its value reads "2 of 30").
COUNTER_JS = """() => {
  for (const m of document.querySelectorAll('[data-testid="stMetric"]')) {
    if (m.innerText.includes('Stages stepped')) {
      const v = m.querySelector('[data-testid="stMetricValue"]');
      return v ? v.innerText.trim() : null;
    }
  }
  return null;
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, env: dict | None = None) -> subprocess.Popen:
    # The same launcher as `make run`: heavy imports at server start, not in the first visitor's wait.
    cmd = [sys.executable, str(ROOT / "scripts" / "serve.py"), "--server.headless=true",
           "--server.address=127.0.0.1", f"--server.port={port}", "--browser.gatherUsageStats=false",
           "--server.fileWatcherType=none"]
    full_env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_healthy(port: int, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"the app did not answer on port {port} within {timeout:.0f} s")


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def tree_cpu_seconds(root: int | None = None) -> float:
    """CPU seconds (user + system) used so far by ``root`` (default: this process) and all its
    descendants (the app server, the Playwright driver, chromium). On a machine shared with other work,
    wall-clock times stretch; this is the work our processes did, which an idle machine would do in about
    this much wall time or less (two cores can overlap the server and the browser)."""
    root = root or os.getpid()
    parent, cpu = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(entry)] = int(fields[1])
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime
    total = 0.0
    for pid, seconds in cpu.items():
        p = pid
        while p and p != root:
            p = parent.get(p, 0)
        if p == root:
            total += seconds
    return total


def counter(page) -> str | None:
    return page.evaluate(COUNTER_JS)


SERVER_PID: list[int] = []
VISIBLE_JS = """(sel) => { const e = document.querySelector(sel);
  return !!e && !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length); }"""


def step_once(page, timeout_ms: int = 600_000, ready: str = CHART) -> tuple[float, float, float]:
    """(click -> stage counter moved, click -> script idle with the chart drawn, CPU seconds used)."""
    before = counter(page)
    cpu = tree_cpu_seconds()
    scpu = tree_cpu_seconds(SERVER_PID[0]) if SERVER_PID else 0.0
    t = time.perf_counter()
    page.get_by_role("button", name="Step", exact=True).click()
    # polled every 100 ms, not at every animation frame (Playwright's default): a page re-evaluated 60 times a
    # second keeps the headless browser busy on one of the two cores the Step itself needs
    page.wait_for_function(f"(before) => {{ const v = ({COUNTER_JS})(); return v !== null && v !== before; }}",
                           arg=before, timeout=timeout_ms, polling=100)
    moved = time.perf_counter() - t
    for selector in (IDLE, ready):  # (wait_for_selector would poll at every frame too)
        page.wait_for_function(VISIBLE_JS, arg=selector, timeout=timeout_ms, polling=100)
    # one animation frame, so the charts' redraw is counted
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    if SERVER_PID:
        SERVER_CPU.append(tree_cpu_seconds(SERVER_PID[0]) - scpu)
        if os.environ.get("BENCH_VERBOSE"):
            print(f"  server CPU {SERVER_CPU[-1]:.2f} s")
    return moved, time.perf_counter() - t, tree_cpu_seconds() - cpu


SERVER_CPU: list[float] = []
ESTIMATE_JS = """() => { const c = [...document.querySelectorAll('[data-testid="stCaptionContainer"]')]
  .map(e => e.innerText).find(t => t.includes('Next Step')); return c || null; }"""


@contextlib.contextmanager
def browser_page():
    """(browser, page): Debian's chromium through Playwright (never a downloaded browser), closed after."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if not chromium:
        raise SystemExit("chromium is not installed (apt-get install chromium); no browser download is attempted")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield browser, browser.new_page(viewport={"width": 1400, "height": 1000})
        finally:
            browser.close()


def measure_explorer(url: str, dataset: str, steps: int, shots: Path | None = None) -> dict:
    """The Stage explorer on ``dataset`` with its default methods: the announced cost, then timed Steps."""
    with browser_page() as (browser, page):
        t0 = time.perf_counter()
        page.goto(url.rstrip("/") + f"/explorer?dataset={dataset}", wait_until="domcontentloaded")
        page.wait_for_function(f"() => ({COUNTER_JS})() !== null", timeout=300_000)
        page.wait_for_selector(IDLE, timeout=300_000)
        opened = time.perf_counter() - t0
        estimates, results = [], []
        for _ in range(steps):
            estimates.append(page.evaluate(ESTIMATE_JS))
            results.append(step_once(page, ready='[data-testid="stPlotlyChart"] .main-svg'))
        if shots is not None:
            shots.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shots / f"bench-explorer-{dataset}.png"), full_page=True)
    return {"opened_s": opened, "estimates": estimates, "steps_s": [t for _, t, _ in results],
            "moved_s": [m for m, _, _ in results], "steps_cpu_s": [c for _, _, c in results],
            "server_cpu_s": list(SERVER_CPU)}


def measure(url: str, steps: int, shots: Path | None = None) -> dict:
    with browser_page() as (browser, page):
        cpu0 = tree_cpu_seconds()
        t0 = time.perf_counter()
        page.goto(url, wait_until="domcontentloaded")
        page.wait_for_selector(CHART, state="visible", timeout=120_000)
        first_paint = time.perf_counter() - t0
        first_paint_cpu = tree_cpu_seconds() - cpu0
        if SERVER_PID and os.environ.get("BENCH_VERBOSE"):
            print(f"  server CPU so far {tree_cpu_seconds(SERVER_PID[0]):.2f} s")
        page.wait_for_selector(IDLE, timeout=120_000)
        idle = time.perf_counter() - t0
        both = [step_once(page) for _ in range(steps)]
        moved = [m for m, _, _ in both]
        times = [t for _, t, _ in both]
        cpus = [c for _, _, c in both]
        if shots is not None:
            shots.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shots / "bench-moons.png"), full_page=True)
        # A second visitor on the now-running server (imports done, oracle cached): what most users see.
        other = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        t0 = time.perf_counter()
        other.goto(url, wait_until="domcontentloaded")
        other.wait_for_selector(CHART, state="visible", timeout=120_000)
        warm_paint = time.perf_counter() - t0
    return {"first_paint_s": first_paint, "first_paint_cpu_s": first_paint_cpu, "first_idle_s": idle,
            "warm_paint_s": warm_paint,
            "steps_s": times, "moved_s": moved, "steps_cpu_s": cpus}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3, help="Steps to time (default 3)")
    ap.add_argument("--url", help="measure an app already running here instead of starting one")
    ap.add_argument("--port", type=int, default=0, help="port for the started app (default: a free one)")
    ap.add_argument("--no-warmup", action="store_true", help="start the app without the UMAP background warm-up")
    ap.add_argument("--shots", type=Path, default=None, help="save a screenshot here")
    ap.add_argument("--page", choices=("moons", "explorer"), default="moons", help="which page's Step to time")
    ap.add_argument("--dataset", default="mnist5k", help="the Stage explorer's dataset (--page explorer)")
    a = ap.parse_args(argv)
    server = None
    url = a.url
    if url is None:
        port = a.port or free_port()
        t = time.perf_counter()
        server = start_server(port, {"TAVAAL_NO_WARMUP": "1"} if a.no_warmup else None)
        SERVER_PID.append(server.pid)
        wait_healthy(port)
        print(f"server healthy after {time.perf_counter() - t:.1f} s")
        url = f"http://127.0.0.1:{port}/"
    try:
        if a.page == "explorer":
            r = measure_explorer(url, a.dataset, a.steps, a.shots)
        else:
            r = measure(url, a.steps, a.shots)
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
    steps = r["steps_s"]
    if a.page == "explorer":
        print(f"Stage explorer on {a.dataset} opened (page idle) after {r['opened_s']:.2f} s")
        for i, (s, m, est) in enumerate(zip(steps, r["moved_s"], r["estimates"])):
            cpu = f"{r['server_cpu_s'][i]:.2f} s" if i < len(r["server_cpu_s"]) else "n/a"
            every = f"{r['steps_cpu_s'][i]:.2f} s" if i < len(r["steps_cpu_s"]) else "n/a"
            print(f"step {i + 1} (click -> idle, gallery drawn): {s:.2f} s   (server CPU {cpu}, every process "
                  f"{every}; counter moved after {m:.2f} s) · announced: {est}")
        if steps:
            med_cpu = statistics.median(r["server_cpu_s"]) if r["server_cpu_s"] else float("nan")
            print(f"one Step, median of {len(steps)}: {statistics.median(steps):.2f} s (target < 10 s; median server "
                  f"CPU {med_cpu:.2f} s)")
        try:
            print(f"load average during the run: {os.getloadavg()[0]:.1f} (1 min), {os.cpu_count()} cores")
        except OSError:
            pass
        return 0
    print(f"first paint (first plotly chart visible): {r['first_paint_s']:.2f} s   (target < 5 s; "
          f"CPU used by server + browser: {r['first_paint_cpu_s']:.2f} s)")
    print(f"first page idle:                          {r['first_idle_s']:.2f} s")
    print(f"first paint, second visitor (warm server): {r['warm_paint_s']:.2f} s")
    for i, (s, m, c) in enumerate(zip(steps, r["moved_s"], r["steps_cpu_s"])):
        print(f"step {i + 1} (click -> idle, chart drawn):   {s:.2f} s   (counter moved after {m:.2f} s; CPU {c:.2f} s)")
    if steps:
        print(f"one Step, median of {len(steps)}:               {statistics.median(steps):.2f} s   (target < 1.5 s; "
              f"median CPU {statistics.median(r['steps_cpu_s']):.2f} s)")
    try:
        load = os.getloadavg()
        print(f"load average during the run: {load[0]:.1f} (1 min), {os.cpu_count()} cores")
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
