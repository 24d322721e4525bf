"""No secret in logs, error output or metrics: a full run with a password-protected
PostgreSQL role, faults included, grepped for the password."""

from __future__ import annotations

import secrets
import socket
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from tests.conftest import _pg_admin
from tests.faults.bridgeio import post
from tests.faults.conftest import make_site
from tests.faults.proxy import Proxy
from tests.faults.support import PROJECT_NAMES, PROJECTS_YAML, WA_MONITOR, figure, wait_until
from wa_monitor.store.heartbeats import read_heartbeats

VELO = list(PROJECT_NAMES)[1]

postgresql_only = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


@pytest.fixture
def role(db_url: str) -> Iterator[tuple[str, str]]:
    """A PostgreSQL role with a password and the rights the monitor needs on the database."""
    name = f"wa_secret_{secrets.token_hex(4)}"
    password = f"Pw-{secrets.token_hex(12)}"
    url = sa.make_url(db_url)
    with _pg_admin() as admin:
        admin.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
    database = url.render_as_string(hide_password=False)
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f"GRANT USAGE, CREATE ON SCHEMA public TO {name}")
        conn.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {name}")
        conn.execute(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {name}")
    try:
        yield name, password
    finally:
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {name}")
        with _pg_admin() as admin:
            admin.execute(f"DROP ROLE IF EXISTS {name}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@postgresql_only
def test_the_database_password_never_leaves_the_environment(
    tmp_path: Path, db_url: str, role: tuple[str, str]
) -> None:
    user, password = role
    url = sa.make_url(db_url)
    proxy = Proxy((url.host or "127.0.0.1", url.port or 5432))
    secret_url = url.set(username=user, password=password, port=proxy.port)
    secret_url_text = secret_url.render_as_string(hide_password=False)
    assert password in secret_url_text
    site = make_site(tmp_path, secret_url_text, None, None)
    post(site.messages_db, site.whatsapp_db, VELO, "DR50000001")
    port = _free_port()
    log_file = tmp_path / "logs" / "monitor.log"
    env = {"LOG_FILE": str(log_file), "METRICS_PORT": str(port), "LOG_LEVEL": "DEBUG"}
    outputs: dict[str, str] = {}
    store = make_site(tmp_path / "admin", db_url, None, None).store()
    process = site.start(**env)
    try:
        wait_until(lambda: len(store.reviews()) == 1, 60, "the first drop", process=process)
        # Faults that produce error messages: an outage, a bad config, a missing store.
        proxy.cut()
        post(site.messages_db, site.whatsapp_db, VELO, "DR50000002")
        process.wait_log("review database")
        proxy.restore()
        wait_until(lambda: len(store.reviews()) == 2, 60, "recovery", process=process)
        site.config.write_text(PROJECTS_YAML.replace("timezone:", "timezon:"))
        process.wait_log("rejected, still monitoring")
        site.config.write_text(PROJECTS_YAML)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            outputs["metrics"] = r.read().decode()
        outputs["heartbeats"] = repr(read_heartbeats(store))
        assert process.stop() == 0
        outputs["service stderr"] = process.log()
        outputs["log file"] = log_file.read_text(encoding="utf-8")
        # The operator's commands, including ones that fail on the database.
        wrong_db = secret_url.set(database="no_such_database").render_as_string(hide_password=False)
        unreachable = secret_url.set(port=1).render_as_string(hide_password=False)
        for name, args, extra in [
            ("settings", ["settings"], {}),
            ("status", ["status"], {}),
            ("status --json", ["status", "--json"], {}),
            ("doctor", ["doctor", "--skip-bridge-process"], {}),
            ("db current", ["db", "current"], {}),
            ("scan, wrong database", ["scan"], {"DATABASE_URL": wrong_db}),
            ("scan, unreachable", ["scan"], {"DATABASE_URL": unreachable}),
            ("run, wrong database", ["run"], {"DATABASE_URL": wrong_db}),
        ]:
            done = subprocess.run(
                [*WA_MONITOR, *args],
                cwd=site.root,
                env=site.env(**env, **extra),
                capture_output=True,
                text=True,
                timeout=120,
                stdin=subprocess.DEVNULL,
            )
            outputs[name] = done.stdout + done.stderr
    finally:
        process.ensure_dead()
        store.dispose()
        proxy.close()
    forms = {password, urllib.parse.quote(password), urllib.parse.quote_plus(password)}
    leaks = {where: text for where, text in outputs.items() if any(f in text for f in forms)}
    masked = sum(text.count(f"{user}:***@") for text in outputs.values())
    size = sum(len(text) for text in outputs.values())
    figure(
        f"secrets: a role with a password in DATABASE_URL; a run with DEBUG logs, a database "
        f"outage, a rejected config and metrics, then settings/status/doctor/db current and "
        f"failing scan/run: {len(outputs)} outputs, {size:,} characters grepped, the password "
        f"found in {len(leaks)} ({', '.join(leaks) or 'none'}); the URL shown masked "
        f"{masked} times"
    )
    assert not leaks, {
        k: [ln for ln in v.splitlines() if password in ln][:3] for k, v in leaks.items()
    }
