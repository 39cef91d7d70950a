"""Sending notifications: a Slack/Mattermost incoming webhook, and who gets what.

The webhook URL is a secret (whoever holds it posts to the channel): it lives in an environment
variable that ``notify.webhook_env`` names, is read once at the CLI edge, and is never printed,
logged or written anywhere; messages about it name the variable instead. Sending never raises
and never waits more than ``timeout`` seconds: a notification is never worth a failed run.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO
from urllib.parse import urlsplit

from labkit.notify._message import Notice, render

if TYPE_CHECKING:
    from labkit.config import NotifyConfig

__all__ = ["WEBHOOK_TIMEOUT", "Notifier", "send_webhook"]

#: seconds a webhook may take to answer before the message is given up
WEBHOOK_TIMEOUT = 10.0


def send_webhook(
    url: str,
    text: str,
    *,
    name: str = "the webhook",
    timeout: float = WEBHOOK_TIMEOUT,
    stream: TextIO | None = None,
) -> bool:
    """POST ``{"text": text}`` to the incoming webhook ``url``; True once it answers 2xx.

    Never raises: any failure (not an http(s) URL, no route, refused, an HTTP error, no answer
    within ``timeout`` seconds) prints one warning line to ``stream`` naming ``name`` (the
    environment variable, e.g. ``$LABKIT_WEBHOOK``), never the URL, and returns False."""
    try:
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise ValueError("not an http(s) URL")
        body = json.dumps({"text": text}).encode()
        request = urllib.request.Request(
            url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:  # http(s) only: checked above
            response.read(65536)
            status = int(getattr(response, "status", 200))
        if 200 <= status < 300:
            return True
        reason = f"HTTP {status}"
    except Exception as exc:  # noqa: BLE001 - a notification never fails the run
        reason = _reason(exc, url, timeout)
    _warn(f"labkit: notify: the webhook in {name} failed ({reason}); the message was not sent", stream)
    return False


def _reason(exc: BaseException, url: str, timeout: float) -> str:
    """Why sending failed, in words that cannot hold the URL (or its path, the secret part)."""
    if isinstance(exc, urllib.error.HTTPError):
        reason = f"HTTP {exc.code} {exc.reason}"
    elif isinstance(exc, urllib.error.URLError):
        inner = exc.reason
        reason = _reason(inner, url, timeout) if isinstance(inner, BaseException) else str(inner)
    elif isinstance(exc, (TimeoutError, socket.timeout)):
        reason = f"no answer within {timeout:g} s"
    elif isinstance(exc, ConnectionRefusedError):
        reason = "connection refused"
    elif isinstance(exc, socket.gaierror):
        reason = "unknown host"
    elif isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror
    elif isinstance(exc, ValueError):
        reason = "not a valid http(s) URL"
    else:
        reason = type(exc).__name__
    return _scrub(" ".join(reason.split()), url)


def _scrub(text: str, url: str) -> str:
    try:
        parts = urlsplit(url)
        secrets = [url, parts.path + ("?" + parts.query if parts.query else ""), parts.path, parts.query]
    except ValueError:
        secrets = [url]
    for secret in sorted((s for s in secrets if len(s) > 1), key=len, reverse=True):
        text = text.replace(secret, "...")
    return text[:200]


def _warn(line: str, stream: TextIO | None) -> None:
    with contextlib.suppress(Exception):  # a closed stream: nothing else to tell
        print(line, file=stream or sys.stderr, flush=True)


@dataclass(frozen=True)
class Notifier:
    """Who is told of what: the events of ``notify.on``, sent to the webhook (if its variable was
    set). Built at the CLI edge by :meth:`from_config`; passed inward to runs and studies.
    ``headline``: the metrics a finished run is judged by (its task's), first found first shown."""

    on: frozenset[str]
    webhook: str | None = field(default=None, repr=False)  #: the URL: a secret, never shown
    webhook_env: str = "the webhook variable"  #: the variable's name, for messages
    headline: tuple[str, ...] = ()
    timeout: float = WEBHOOK_TIMEOUT

    def __repr__(self) -> str:  # the URL is never part of it
        return f"Notifier(on={sorted(self.on)}, webhook=${self.webhook_env if self.webhook else None})"

    @classmethod
    def from_config(
        cls,
        config: NotifyConfig | None,
        environ: Mapping[str, str],
        *,
        headline: Sequence[str] = (),
        stream: TextIO | None = None,
        timeout: float = WEBHOOK_TIMEOUT,
    ) -> Notifier | None:
        """The notifier of an experiment's ``notify`` section, its webhook URL read from
        ``environ`` (the CLI passes ``os.environ``); None when nothing is to be sent from this
        process (no section, or email only: SLURM sends those). A variable that is unset or
        empty: one warning line, and the run goes on without webhook notifications."""
        if config is None or config.webhook_env is None:
            return None
        name = config.webhook_env
        url = environ.get(name, "").strip()
        if not url:
            _warn(f"labkit: notify.webhook_env: ${name} is not set; no webhook notifications", stream)
            return None
        return cls(frozenset(config.on), url, name, tuple(headline), timeout)

    def wants(self, event: str) -> bool:
        return event in self.on and self.webhook is not None

    def send(self, notice: Notice, *, stream: TextIO | None = None) -> bool:
        """Send ``notice`` if its event is one of ``on``; True once the webhook took it. Never raises."""
        if not self.wants(notice.event):
            return False
        try:
            text = render(notice)
        except Exception as exc:  # noqa: BLE001
            _warn(f"labkit: notify: no {notice.event} message ({type(exc).__name__})", stream)
            return False
        assert self.webhook is not None
        name = f"${self.webhook_env}"
        return send_webhook(self.webhook, text, name=name, timeout=self.timeout, stream=stream)
