"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives.

Tests read the messages from memory; the local stack also writes each one to a directory as an
.eml file (``python -m devtools.smtp --port 1025 --maildir .stack/mail``).
"""

from __future__ import annotations

import argparse
import email
import email.policy
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any


@dataclass
class MailSink:
    maildir: Path | None = None
    messages: list[EmailMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(msg)
            if self.maildir is not None:
                self.maildir.mkdir(parents=True, exist_ok=True)
                (self.maildir / f"{time.time_ns()}.eml").write_bytes(envelope.content)
        return "250 Message accepted for delivery"

    def wait_for(self, predicate, timeout: float = 30.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = [m for m in self.messages if predicate(m)]
            if found:
                return found
            time.sleep(0.1)
        return []


def body_text(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("html", "plain"))
    return part.get_content() if part else ""


class SmtpServer:
    def __init__(self, port: int, maildir: Path | None = None) -> None:
        from aiosmtpd.controller import Controller

        self.sink = MailSink(maildir=maildir)
        self.port = port
        self._controller = Controller(self.sink, hostname="127.0.0.1", port=port)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--maildir", type=Path, required=True)
    args = parser.parse_args(argv)
    server = SmtpServer(args.port, args.maildir)
    server.start()
    print(f"SMTP on 127.0.0.1:{args.port}, mail kept in {args.maildir}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
