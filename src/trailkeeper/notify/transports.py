"""How a message leaves trailkeeper, one `Transport` per protocol: HTTP(S) POST of the signed
SNS document, email over SMTP (STARTTLS or implicit TLS, with authentication), and chat and
paging services through Apprise (a trailkeeper extension: the subscription's endpoint is an
Apprise URL such as `slack://...` or `pagerduty://...`).

A transport raises `DeliveryError` (what went wrong, in a line) when the receiver did not take
the message; the delivery worker retries it. Foreign exceptions are wrapped here.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from typing import Any, Protocol

import httpx
import orjson

from trailkeeper.errors import TrailkeeperError
from trailkeeper.notify.settings import SMTP_STARTTLS, SMTP_TLS, SmtpSettings
from trailkeeper.notify.topics import Outgoing

# An HTTP receiver has this long to answer (SNS waits 15 s); connecting gets less, since a
# receiver that does not accept connections is down, not slow.
HTTP_TIMEOUT_S = 15.0
HTTP_CONNECT_TIMEOUT_S = 5.0
USER_AGENT = "trailkeeper SNS Agent"
MAX_ERROR_CHARS = 300


class DeliveryError(TrailkeeperError):
    """A receiver did not take a message (it will be retried)."""


class Transport(Protocol):
    def send(self, message: Outgoing) -> None: ...


class HttpTransport:
    """POST the signed SNS document, with SNS's headers; any 2xx answer is an acknowledgement."""

    def __init__(self, client: httpx.Client | None = None) -> None:
        self._client = client or httpx.Client(
            timeout=httpx.Timeout(HTTP_TIMEOUT_S, connect=HTTP_CONNECT_TIMEOUT_S), follow_redirects=False,
            trust_env=False)

    def send(self, message: Outgoing) -> None:
        headers = {"x-amz-sns-message-type": message.message_type, "x-amz-sns-message-id": message.message_id,
                   "x-amz-sns-topic-arn": message.topic_arn, "content-type": "text/plain; charset=UTF-8",
                   "user-agent": USER_AGENT}
        if message.message_type == "Notification":
            headers["x-amz-sns-subscription-arn"] = message.subscription_arn
        try:
            answer = self._client.post(message.endpoint, content=orjson.dumps(message.document,
                                                                              option=orjson.OPT_INDENT_2),
                                       headers=headers)
        except httpx.HTTPError as e:
            raise DeliveryError(_short(f"{type(e).__name__}: {e}")) from e
        if not 200 <= answer.status_code < 300:
            raise DeliveryError(f"the endpoint answered HTTP {answer.status_code}")

    def close(self) -> None:
        self._client.close()


class SmtpTransport:
    """One SMTP session per message: connect, secure, authenticate, send, quit."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    def _context(self) -> ssl.SSLContext:
        ca = str(self.settings.ca_file) if self.settings.ca_file is not None else None
        return ssl.create_default_context(cafile=ca)

    def send(self, message: Outgoing) -> None:
        s = self.settings
        mail = EmailMessage()
        mail["From"] = formataddr((s.sender_name, s.sender))
        mail["To"] = message.endpoint
        mail["Subject"] = message.subject
        mail["Message-ID"] = make_msgid(domain=s.sender.rsplit("@", 1)[1])
        mail["X-Amz-Sns-Message-Id"] = message.message_id
        mail["X-Amz-Sns-Topic-Arn"] = message.topic_arn
        mail.set_content(message.text)
        try:
            if s.security == SMTP_TLS:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout_s, context=self._context())
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout_s)
            with smtp:
                smtp.ehlo()
                if s.security == SMTP_STARTTLS:
                    smtp.starttls(context=self._context())
                    smtp.ehlo()
                if s.username is not None and s.password is not None:
                    smtp.login(s.username, s.password)
                smtp.send_message(mail)
        except (OSError, smtplib.SMTPException) as e:
            raise DeliveryError(_short(f"SMTP {s.host}:{s.port}: {type(e).__name__}: {e}")) from e


class MissingSmtp:
    """The transport of email subscriptions when no [smtp] is configured: every attempt fails
    with what to do, so the failure is visible (audited) rather than silent."""

    def send(self, message: Outgoing) -> None:
        raise DeliveryError("no mail server is configured: add an [smtp] section to trailkeeper.toml")


class AppriseTransport:
    """Send the human form (subject and text) to the Apprise URL of the subscription."""

    def send(self, message: Outgoing) -> None:
        import apprise  # imported here: only installations with apprise subscriptions pay for it

        notifier = apprise.Apprise()
        if not notifier.add(message.endpoint):
            raise DeliveryError("Apprise does not recognise the subscription's URL")
        capture: Any = apprise.LogCapture  # untyped in apprise: collects its warnings for the error
        with capture(level=logging.WARNING) as captured:
            ok = notifier.notify(body=message.text, title=message.subject)
        if not ok:
            detail = captured.getvalue().strip().splitlines()
            raise DeliveryError(_short("Apprise could not notify" + (f": {detail[-1]}" if detail else "")))


def default_transports(smtp: SmtpSettings | None) -> Mapping[str, Transport]:
    http = HttpTransport()
    return {"http": http, "https": http, "email": SmtpTransport(smtp) if smtp is not None else MissingSmtp(),
            "apprise": AppriseTransport()}


def redacted_endpoint(protocol: str, endpoint: str) -> str:
    """An endpoint as audit events show it: no credentials (an Apprise URL carries its service's
    token, an HTTP URL may carry a password or a secret query)."""
    if protocol == "apprise":
        return endpoint.split("://", 1)[0] + "://…"
    if protocol in ("http", "https"):
        scheme, _, rest = endpoint.partition("://")
        host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
        path = rest[len(rest.split("/", 1)[0]):].split("?", 1)[0]
        return f"{scheme}://{host}{path}"
    return endpoint


def _short(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS - 1] + "…"
