"""Delivering alerts from the outbox: signed webhooks and e-mail, retried with backoff.

A try is leased before it is made (``AlertStore.claim``), so a process killed between the call
and recording its result tries again after the lease with the same body and the same
``Idempotency-Key``: at most one extra delivery, never a new alert. A 2xx answer is delivered;
anything else (an error, a timeout, another status) is tried again after
``min(cap, base · 2^(attempts−1))`` scaled by a random factor in [0.5, 1] (jitter), until the
alert has failed for ``dead_after`` (24 h by default); then it is given up and its subscription
flagged dead.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson
import structlog

from kernel.calendar import VN_TZ
from kernel.errors import UserError
from kernel.metrics import METRICS
from projections.alerts.store import AlertStore, Pending, Target

log = structlog.get_logger("motcua.alerts")

RULE_VI = {"due_soon": "sắp đến hạn trả kết quả", "apology_due": "hôm nay là hạn cuối gửi "
           "phiếu xin lỗi đúng hạn", "overdue": "đã quá hạn trả kết quả",
           "feedback_due": "phản ánh, kiến nghị sắp đến hạn trả lời"}


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of the body>``, the ``X-Motcua-Signature`` header."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class SmtpUrl:
    """``smtp://host:port`` or ``smtps://user:pass@host:port`` (MOTCUA_SMTP_URL)."""

    tls: bool
    host: str
    port: int
    user: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> SmtpUrl:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise UserError(f"MOTCUA_SMTP_URL {url.split('@')[-1]!r} is not smtp://host:port "
                            "or smtps://user:pass@host:port.")
        port = parts.port or (465 if parts.scheme == "smtps" else 25)
        return cls(parts.scheme == "smtps", parts.hostname, port,
                   unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None)


def email_message(body: dict[str, Any], to: str, sender: str) -> EmailMessage:
    """The alert as a Vietnamese e-mail (its Message-ID is the alert id: a repeat is the same
    message to a mail system that checks)."""
    subject = body.get("dossier_id") or body.get("feedback_id")
    kind = "Hồ sơ" if "dossier_id" in body else "Phản ánh"
    due = datetime.fromisoformat(body["due_at"]).astimezone(VN_TZ)
    msg = EmailMessage()
    msg["Subject"] = f"[motcua] {kind} {subject} {RULE_VI[body['rule']]} ({due:%H:%M %d/%m/%Y})"
    msg["From"] = sender
    msg["To"] = to
    msg["Message-ID"] = f"<{body['alert_id']}@motcua>"
    msg["X-Motcua-Alert-Id"] = body["alert_id"]
    holder = body.get("holder") or {}
    lines = [f"{kind} {subject} của đơn vị {body['agency_id']} {RULE_VI[body['rule']]}.",
             f"Hạn trả: {due:%H:%M ngày %d/%m/%Y}."]
    if holder:
        who = holder["unit"] + (f", cán bộ {holder['official']}" if holder.get("official")
                                else "")
        lines.append(f"Đang giữ hồ sơ: {who} (bước {holder['step']}).")
    lines += ["", f"Mã cảnh báo: {body['alert_id']}"]
    msg.set_content("\n".join(lines))
    return msg


Sender = Callable[[Target, bytes, str, float], None]


def post_webhook(target: Target, body: bytes, alert_id: str, timeout: float) -> None:
    """POST the body; returns on 2xx, raises otherwise."""
    headers = {"Content-Type": "application/json", "Idempotency-Key": alert_id,
               "User-Agent": "motcua-alerts/1"}
    if target.secret:
        headers["X-Motcua-Signature"] = signature(target.secret, body)
    req = urllib.request.Request(target.target, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=timeout) as res:  # noqa: S310 (http(s) only)
        if not 200 <= res.status < 300:
            raise RuntimeError(f"HTTP {res.status}")


@dataclass
class Dispatcher:
    """Tries the outbox's due alerts; the clock, the randomness and the senders are given."""

    store: AlertStore
    clock: Callable[[], float]
    smtp_url: str | None = None
    sender_address: str = "motcua@localhost"
    timeout: float = 10.0
    lease: float = 60.0
    base: float = 5.0
    cap: float = 3600.0
    dead_after: float = 24 * 3600.0
    rng: random.Random = field(default_factory=random.Random)

    def backoff(self, attempts: int) -> float:
        """The wait before the next try after ``attempts`` failed ones, with jitter."""
        delay = min(self.cap, self.base * 2 ** max(attempts - 1, 0))
        return float(delay * (0.5 + 0.5 * self.rng.random()))

    def run_once(self) -> int:
        """Try every alert due now; how many were delivered."""
        now = self.clock()
        done = 0
        for p in self.store.claim(now, self.lease):
            target = self.store.target(p.subscription)
            if target is None or target.dead:
                continue
            try:
                self.send(target, p)
            except Exception as e:  # the receiver's failure, whatever it is: try again later
                self._failed(p, target, e)
                continue
            self.store.delivered(p.alert_id, self.clock())
            METRICS.alerts_delivered.labels(channel=target.channel).inc()
            log.info("alert_delivered", alert_id=p.alert_id, subscription=p.subscription,
                     attempts=p.attempts)
            done += 1
        return done

    def send(self, target: Target, p: Pending) -> None:
        if target.channel == "webhook":
            post_webhook(target, p.body, p.alert_id, self.timeout)
            return
        if not self.smtp_url:
            raise RuntimeError("MOTCUA_SMTP_URL is not set")
        url = SmtpUrl.parse(self.smtp_url)
        msg = email_message(orjson.loads(p.body), target.target, self.sender_address)
        smtp: smtplib.SMTP = (smtplib.SMTP_SSL(url.host, url.port, timeout=self.timeout,
                                               context=ssl.create_default_context())
                              if url.tls else smtplib.SMTP(url.host, url.port,
                                                           timeout=self.timeout))
        with smtp:
            if url.user:
                smtp.login(url.user, url.password or "")
            smtp.send_message(msg)

    def _failed(self, p: Pending, target: Target, e: Exception) -> None:
        now = self.clock()
        error = _describe(e)
        METRICS.alerts_failed.labels(channel=target.channel).inc()
        assert p.first_try is not None
        if now - p.first_try >= self.dead_after:
            self.store.dead(p.alert_id, p.subscription, error, now)
            METRICS.alerts_dead.inc()
            log.error("alert_subscription_dead", alert_id=p.alert_id,
                      subscription=p.subscription, attempts=p.attempts, error=error)
            return
        self.store.failed(p.alert_id, error, now + self.backoff(p.attempts))
        log.warning("alert_delivery_failed", alert_id=p.alert_id, subscription=p.subscription,
                    attempts=p.attempts, error=error)


def _describe(e: Exception) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code}"
    return f"{type(e).__name__}: {e}".strip()
