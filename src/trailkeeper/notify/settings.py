"""Settings of the notification transports ([smtp] in trailkeeper.toml), kept free of heavy
imports: config.py reads them at every start."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

SMTP_STARTTLS, SMTP_TLS, SMTP_PLAIN = "starttls", "tls", "none"
SMTP_SECURITY = (SMTP_STARTTLS, SMTP_TLS, SMTP_PLAIN)
DEFAULT_SMTP_PORT = 587  # submission, upgraded with STARTTLS
DEFAULT_SMTP_TIMEOUT_S = 15.0
DEFAULT_SENDER_NAME = "trailkeeper notifications"
SMTP_KEYS = frozenset({"host", "port", "sender", "sender_name", "security", "username", "password", "ca_file",
                       "timeout"})


@dataclass(frozen=True)
class SmtpSettings:
    """The mail server email subscriptions are sent through ([smtp] in trailkeeper.toml)."""

    host: str
    sender: str  # the From address
    port: int = DEFAULT_SMTP_PORT
    security: str = SMTP_STARTTLS  # starttls, tls (implicit, usually port 465) or none
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None  # trust this CA bundle instead of the system's (a private mail server)
    timeout_s: float = DEFAULT_SMTP_TIMEOUT_S
    sender_name: str = DEFAULT_SENDER_NAME

    def problems(self) -> list[str]:
        """What is inconsistent, each with what to do (empty when the settings can work)."""
        found: list[str] = []
        if not self.host:
            found.append("smtp.host is empty: name the mail server")
        if not 0 < self.port < 65536:
            found.append(f"smtp.port {self.port} is not in 1..65535")
        if self.security not in SMTP_SECURITY:
            found.append(f"smtp.security {self.security!r} is not one of {', '.join(SMTP_SECURITY)}")
        if "@" not in self.sender:
            found.append(f"smtp.sender {self.sender!r} is not an email address")
        if (self.username is None) != (self.password is None):
            found.append("smtp.username and smtp.password go together: give both or neither")
        if self.username is not None and self.security == SMTP_PLAIN:
            found.append("smtp.security = none would send the password in clear: use starttls or tls")
        if self.ca_file is not None and not self.ca_file.is_file():
            found.append(f"smtp.ca_file {self.ca_file} is not a readable file")
        if not 0 < self.timeout_s <= 300:
            found.append("smtp.timeout must be in (0, 300] seconds")
        return found

    @classmethod
    def from_toml(cls, section: dict[str, Any]) -> SmtpSettings:
        """The [smtp] table; unknown keys and wrong types are refused (ValueError, with what to do)."""
        unknown = sorted(set(section) - SMTP_KEYS)
        if unknown:
            raise ValueError(f"[smtp] has unknown settings {', '.join(unknown)}; known: {', '.join(sorted(SMTP_KEYS))}")
        strings = {k: section[k] for k in ("host", "sender", "sender_name", "security", "username", "password")
                   if k in section}
        for key, value in strings.items():
            if not isinstance(value, str):
                raise ValueError(f"smtp.{key} must be a string, got {value!r}")
        port, timeout = section.get("port", DEFAULT_SMTP_PORT), section.get("timeout", DEFAULT_SMTP_TIMEOUT_S)
        if isinstance(port, bool) or not isinstance(port, int):
            raise ValueError(f"smtp.port must be an integer, got {port!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise ValueError(f"smtp.timeout must be a number of seconds, got {timeout!r}")
        ca_file = section.get("ca_file")
        return cls(host=strings.get("host", ""), sender=strings.get("sender", ""), port=port,
                   security=strings.get("security", SMTP_STARTTLS), username=strings.get("username"),
                   password=strings.get("password"), ca_file=Path(str(ca_file)) if ca_file is not None else None,
                   timeout_s=float(timeout), sender_name=strings.get("sender_name", DEFAULT_SENDER_NAME))
