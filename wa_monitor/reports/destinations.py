"""Where a built report (or an alert) goes: one deliverer per destination kind.

A kind added to core.report_config.DESTINATIONS gets its deliverer here (DELIVERERS);
the delivery records and the callers stay as they are.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import mimetypes
import os
import smtplib
import socket
import ssl
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

import httpx

from wa_monitor.core.errors import WaMonitorError
from wa_monitor.core.report_config import (
    Destination,
    EmailDestination,
    FolderDestination,
    WebhookDestination,
)
from wa_monitor.core.settings import Settings
from wa_monitor.reports.build import Built

SIGNATURE_HEADER = "X-WA-Monitor-Signature"
TIMESTAMP_HEADER = "X-WA-Monitor-Timestamp"
TIMEOUT = 30.0  # seconds for one SMTP or webhook exchange


class DeliveryError(WaMonitorError):
    """A destination refused a report; the message says why and what to do."""


@dataclass(frozen=True)
class Smtp:
    """The mail server of the .env (SMTP_*)."""

    host: str
    port: int
    security: str  # starttls | ssl | none
    sender: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Outbound:
    """What e-mail and webhook deliveries need from the settings: the mail server, and the
    variables a webhook's `secret:` names."""

    smtp: Smtp | None = None
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)
    # Tests point TLS at their own authority; None: the system's.
    tls: ssl.SSLContext | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Outbound:
        smtp = None
        if settings.smtp_host:
            default = {"starttls": 587, "ssl": 465, "none": 25}[settings.smtp_security]
            sender = settings.smtp_from or settings.smtp_user or ""
            if "@" not in sender:
                sender = f"wa-monitor@{socket.gethostname()}"
            smtp = Smtp(
                host=settings.smtp_host,
                port=settings.smtp_port or default,
                security=settings.smtp_security,
                sender=sender,
                user=settings.smtp_user,
                password=settings.smtp_password,
            )
        return cls(smtp=smtp, environ=dict(settings.environ))


# -- folder ---------------------------------------------------------------------------


def deliver_to_folder(
    destination: FolderDestination, built: Built, _out: Outbound
) -> dict[str, Any]:
    """Write the file into the folder in one step (a temporary file, then a rename):
    a reader of the folder sees the whole file or none, the old one until then."""
    folder = destination.path
    problem = check_folder(destination, _out)
    if problem:
        raise DeliveryError(problem)
    target = folder / built.file_name
    try:
        fd, temp_name = tempfile.mkstemp(prefix=f".{built.file_name}.", suffix=".part", dir=folder)
    except OSError as exc:
        raise DeliveryError(_os_problem(folder, exc)) from None
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(built.content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o644)  # mkstemp's 0600 would hide it from the folder's readers
        os.replace(temp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise DeliveryError(_os_problem(folder, exc)) from None
    with contextlib.suppress(OSError):
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return {"path": str(target)}


def check_folder(destination: FolderDestination, _out: Outbound | None = None) -> str | None:
    """Why the folder cannot take a file, if it cannot (checked before writing)."""
    folder = destination.path
    if not folder.exists():
        return f"the folder {folder} does not exist; create it, or fix the report's `folder:`"
    if not folder.is_dir():
        return f"{folder} is not a folder; fix the report's `folder:`"
    if not os.access(folder, os.W_OK | os.X_OK):
        return (
            f"cannot write in {folder} (permission denied); make it writable by the user "
            f"running wa-monitor (uid {os.geteuid()})"
        )
    return None


def _os_problem(folder: Path, exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    return f"cannot write in {folder} ({reason}); check the folder and its disk"


# -- e-mail -----------------------------------------------------------------------------


def email_message(destination: EmailDestination, built: Built, smtp: Smtp) -> EmailMessage:
    """The message: the report's lines as its text, its file attached (an alert: none)."""
    message = EmailMessage()
    message["From"] = smtp.sender
    message["To"] = ", ".join(destination.to)
    message["Subject"] = destination.subject or built.subject or f"WA Monitor: {built.file_name}"
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=smtp.sender.rpartition("@")[2] or None)
    message.set_content(built.text or f"{built.file_name}: {built.rows} row(s), attached.\n")
    if built.attach:
        kind = mimetypes.guess_type(built.file_name)[0] or "application/octet-stream"
        main, _, sub = kind.partition("/")
        message.add_attachment(built.content, maintype=main, subtype=sub, filename=built.file_name)
    return message


def deliver_by_email(destination: EmailDestination, built: Built, out: Outbound) -> dict[str, Any]:
    problem = check_email(destination, out)
    if problem or out.smtp is None:
        raise DeliveryError(problem or "no SMTP_HOST")
    smtp = out.smtp
    message = email_message(destination, built, smtp)
    where = f"{smtp.host}:{smtp.port}"
    context = out.tls or ssl.create_default_context()
    try:
        client: smtplib.SMTP
        if smtp.security == "ssl":
            client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=TIMEOUT, context=context)
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=TIMEOUT)
        with client:
            if smtp.security == "starttls":
                client.starttls(context=context)
            if smtp.user:
                client.login(smtp.user, smtp.password or "")
            refused = client.send_message(message)
    except smtplib.SMTPAuthenticationError:
        raise DeliveryError(
            f"the mail server {where} refused SMTP_USER {smtp.user}'s password; fix "
            "SMTP_USER / SMTP_PASSWORD in the .env"
        ) from None
    except smtplib.SMTPNotSupportedError as exc:
        raise DeliveryError(
            f"the mail server {where} does not offer that: {exc}; check SMTP_SECURITY "
            "(starttls, ssl or none)"
        ) from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise DeliveryError(
            f"the mail server {where} refused every recipient ({', '.join(exc.recipients)}); "
            "check the addresses under `email:`"
        ) from None
    except (smtplib.SMTPException, OSError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise DeliveryError(
            f"cannot send mail through {where} ({reason}); check SMTP_HOST, SMTP_PORT and "
            "SMTP_SECURITY, and that the server is up"
        ) from None
    accepted = [a for a in destination.to if a not in refused]
    return {"to": accepted, "refused": sorted(refused), "messageId": message["Message-ID"]}


def check_email(_destination: EmailDestination, out: Outbound) -> str | None:
    if out.smtp is None:
        return "SMTP_HOST is not set; set SMTP_HOST (and SMTP_USER, SMTP_PASSWORD) in the .env"
    return None


# -- webhook ----------------------------------------------------------------------------


def signature(key: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256 over `<timestamp>.<body>`: a receiver recomputes it,
    and refuses an old timestamp (a replay)."""
    digest = hmac.new(key.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def deliver_to_webhook(
    destination: WebhookDestination, built: Built, out: Outbound
) -> dict[str, Any]:
    problem = check_webhook(destination, out)
    if problem:
        raise DeliveryError(problem)
    timestamp = str(int(time.time()))
    kind = mimetypes.guess_type(built.file_name)[0] or "application/octet-stream"
    headers = {
        "Content-Type": kind,
        "Content-Disposition": f'attachment; filename="{built.file_name}"',
        TIMESTAMP_HEADER: timestamp,
        "User-Agent": "wa-monitor",
        **{f"X-WA-Monitor-{k.title()}": v for k, v in built.labels.items()},
    }
    if destination.secret:
        key = out.environ[destination.secret]
        headers[SIGNATURE_HEADER] = signature(key, timestamp, built.content)
    shown = str(destination).removeprefix("webhook ")  # no query: it may hold a token
    try:
        with httpx.Client(timeout=TIMEOUT, follow_redirects=False) as client:
            answer = client.post(destination.url, content=built.content, headers=headers)
    except httpx.HTTPError as exc:
        raise DeliveryError(
            f"cannot reach the webhook {shown} ({type(exc).__name__}: {exc}); check the url "
            "and that its server is up"
        ) from None
    if not 200 <= answer.status_code < 300:
        said = answer.text[:200].strip()
        raise DeliveryError(
            f"the webhook {shown} answered HTTP {answer.status_code}"
            + (f": {said}" if said else "")
            + "; a 2xx is delivered, anything else is tried again"
        )
    return {"status": answer.status_code}


def check_webhook(destination: WebhookDestination, out: Outbound) -> str | None:
    if destination.secret and not out.environ.get(destination.secret):
        return (
            f"the webhook's secret {destination.secret} is not set; add "
            f"{destination.secret}=<a long random key> to the .env (the receiver checks "
            f"{SIGNATURE_HEADER} with the same key)"
        )
    return None


# Each destination kind's deliverer: writes or sends the file, answers what it did
# (kept in the delivery's details), raises DeliveryError saying why not.
DELIVERERS: dict[type[Any], Callable[[Any, Built, Outbound], dict[str, Any]]] = {
    FolderDestination: deliver_to_folder,
    EmailDestination: deliver_by_email,
    WebhookDestination: deliver_to_webhook,
}
# Each kind's check for a dry run: a problem that would make delivery fail, or None.
CHECKS: dict[type[Any], Callable[[Any, Outbound], str | None]] = {
    FolderDestination: check_folder,
    EmailDestination: check_email,
    WebhookDestination: check_webhook,
}


def deliver(destination: Destination, built: Built, out: Outbound | None = None) -> dict[str, Any]:
    return DELIVERERS[type(destination)](destination, built, out or Outbound())


def check(destination: Destination, out: Outbound | None = None) -> str | None:
    return CHECKS[type(destination)](destination, out or Outbound())
