"""A StatsD receiver on loopback: the metrics Airflow (and the pipeline, include/metrics.py)
sends, kept as they arrive.

Tests read the lines from memory; the local stack also appends each one to a file
(``python -m devtools.statsd --port 58125 --out .stack/metrics/statsd.txt``). StatsD is UDP
text, one metric per line: ``<name>:<value>|<type>`` (c: counter, g: gauge, ms: timer).
"""

from __future__ import annotations

import argparse
import socket
import threading
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    name: str
    value: float
    kind: str

    @classmethod
    def parse(cls, line: str) -> Sample | None:
        """One StatsD line, or None for one that is not StatsD (never an exception: it is UDP)."""
        name, sep, rest = line.partition(":")
        value, bar, kind = rest.partition("|")
        if not (sep and bar and name):
            return None
        try:
            return cls(name, float(value), kind.split("|")[0].split("#")[0])
        except ValueError:
            return None


def read_samples(path: Path) -> list[Sample]:
    """What a receiver wrote to ``path`` (the local stack's file)."""
    if not path.exists():
        return []
    return [s for line in path.read_text().splitlines() if (s := Sample.parse(line))]


class StatsdServer:
    def __init__(self, port: int, out: Path | None = None) -> None:
        self.port, self.out = port, out
        self.lines: list[str] = []
        self.lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # UDP: a full receive buffer drops. Room for a burst of a whole run's metrics.
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 2**20)
        self._sock.bind(("127.0.0.1", port))
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._stopped = threading.Event()

    def _serve(self) -> None:
        self._sock.settimeout(0.2)
        handle = self.out.open("a", buffering=1) if self.out else None
        try:
            while not self._stopped.is_set():
                try:
                    data = self._sock.recv(65535)
                except TimeoutError:
                    continue
                lines = [ln for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
                with self.lock:
                    self.lines.extend(lines)
                if handle:
                    handle.write("".join(f"{ln}\n" for ln in lines))
        finally:
            if handle:
                handle.close()

    def samples(self) -> list[Sample]:
        with self.lock:
            return [s for ln in self.lines if (s := Sample.parse(ln))]

    def start(self) -> None:
        if self.out:
            self.out.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        self._sock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    server = StatsdServer(args.port, args.out)
    server.start()
    print(f"StatsD on 127.0.0.1:{args.port} (UDP), metrics appended to {args.out}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
