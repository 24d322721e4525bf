"""`wa-monitor serve` as a real process: it checks its settings and schema, then serves HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.test_api_support import PROJECTS_YAML
from wa_monitor.store.review_store import ReviewStore


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def environment(tmp_path: Path, db_url: str, **extra: str) -> dict[str, str]:
    config = tmp_path / "projects.yaml"
    config.write_text(PROJECTS_YAML)
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DATABASE_URL")}
    env.update({"DATABASE_URL": db_url, "WA_MONITOR_CONFIG": str(config), "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def serve(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "wa_monitor", "serve", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_http(
    url: str, process: subprocess.Popen[str], timeout: float = 30.0
) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise AssertionError(
                f"serve exited early: {process.stderr.read() if process.stderr else ''}"
            )
        try:
            return httpx.get(url, timeout=2.0, follow_redirects=False)
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)


@pytest.fixture
def upgraded_sqlite(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'reviews.db'}"
    store = ReviewStore(url)
    store.upgrade()
    store.dispose()
    yield url


def stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    process.terminate()
    try:
        out, err = process.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    return out, err


def test_serve_answers_the_page_and_the_api(tmp_path: Path, upgraded_sqlite: str) -> None:
    port = free_port()
    env = environment(tmp_path, upgraded_sqlite, SECRET_KEY="a-secret-key-for-the-test")
    process = serve(env, "--host", "127.0.0.1", "--port", str(port))
    try:
        page = wait_for_http(f"http://127.0.0.1:{port}/wa-monitor", process)
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
        login = httpx.get(f"http://127.0.0.1:{port}/login")
        assert login.status_code == 200 and "Sign in" in login.text
        assert "default-src 'self'" in login.headers["content-security-policy"]
        api = httpx.get(f"http://127.0.0.1:{port}/api/wa-monitor-drops")
        assert api.status_code == 401 and api.json()["error"]["code"] == "UNAUTHORIZED"
        doc = httpx.get(f"http://127.0.0.1:{port}/api/openapi.json").json()
        assert "/api/wa-monitor-daily-drops" in doc["paths"]
        js = httpx.get(f"http://127.0.0.1:{port}/static/app.js")
        assert js.status_code == 200 and "wa-monitor-drops" in js.text
    finally:
        stop(process)


def test_serve_refuses_to_start_without_a_secret_key(tmp_path: Path, upgraded_sqlite: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "wa_monitor", "serve", "--port", str(free_port())],
        env=environment(tmp_path, upgraded_sqlite),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "SECRET_KEY is not set" in result.stderr and "--dev" in result.stderr


def test_serve_refuses_a_database_without_the_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = subprocess.run(
        [sys.executable, "-m", "wa_monitor", "serve", "--port", str(free_port())],
        env=environment(tmp_path, url, SECRET_KEY="x" * 32),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "wa-monitor db upgrade" in result.stderr


def test_serve_dev_mode_warns_and_serves_without_a_secret_key(
    tmp_path: Path, upgraded_sqlite: str
) -> None:
    port = free_port()
    process = serve(environment(tmp_path, upgraded_sqlite), "--port", str(port), "--dev")
    try:
        assert wait_for_http(f"http://127.0.0.1:{port}/login", process).status_code == 200
    finally:
        _out, err = stop(process)
    assert "--dev without SECRET_KEY" in err


def test_serve_says_how_to_add_a_user_when_nobody_can_sign_in(
    tmp_path: Path, upgraded_sqlite: str
) -> None:
    env = environment(tmp_path, upgraded_sqlite, SECRET_KEY="a-secret-key-for-the-test")
    process = serve(env, "--host", "127.0.0.1", "--port", str(free_port()))
    try:
        assert process.stderr is not None
        for line in process.stderr:  # the pytest timeout bounds a hint that never comes
            if "No user can sign in yet" in line:
                break
        else:
            raise AssertionError("serve exited without the hint")
        assert "wa-monitor users add NAME --role admin" in line
    finally:
        stop(process)

    from wa_monitor.store.users import add_user

    store = ReviewStore(upgraded_sqlite)
    try:
        add_user(store, "ada", "a-long-password", "admin")
    finally:
        store.dispose()
    port = free_port()
    process = serve(env, "--host", "127.0.0.1", "--port", str(port))
    try:
        wait_for_http(f"http://127.0.0.1:{port}/login", process)
    finally:
        _, err = stop(process)
    assert "No user can sign in yet" not in err
