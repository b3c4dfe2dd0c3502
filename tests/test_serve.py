"""The server listens on this machine only and sends no usage statistics unless told otherwise
(issue #9, item 12): scripts/serve.py with no address binds 127.0.0.1, and the project's
.streamlit/config.toml pins the same for a plain `streamlit run app.py`."""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listeners(port: int) -> set[str]:
    """Local addresses listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_serve_without_arguments_listens_on_localhost_only():
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, str(REPO / "scripts" / "serve.py"), f"--server.port={port}",
                             "--server.headless=true"], cwd="/", env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while not _listeners(port) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        time.sleep(0.5)  # a second (IPv6) listener would appear beside the first
        listeners = _listeners(port)
        assert listeners, proc.communicate(timeout=5)[0] if proc.poll() is not None else "no listener"
        assert listeners == {"0100007F"}, listeners  # 127.0.0.1, never 0.0.0.0 or ::
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert "Network URL" not in out and "External URL" not in out


def test_serve_passes_the_safe_defaults_unless_overridden():
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from serve import streamlit_argv
    finally:
        sys.path.remove(str(REPO / "scripts"))
    argv = streamlit_argv(["--server.port=9000"])
    assert "--server.address=127.0.0.1" in argv and "--browser.gatherUsageStats=false" in argv
    argv = streamlit_argv(["--server.address", "0.0.0.0"])  # an explicit choice is kept, not doubled
    assert "--server.address=127.0.0.1" not in argv and argv[-2:] == ["--server.address", "0.0.0.0"]


def test_the_project_config_pins_localhost_and_no_statistics_for_streamlit_run():
    code = ("from streamlit import config; config.get_config_options(force_reparse=True); "
            "print(config.get_option('server.address'), config.get_option('browser.gatherUsageStats'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["127.0.0.1", "False"], out.stderr
