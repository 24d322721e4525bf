"""Starting and reading the delaying proxy (bench/proxy.py) as a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parent.parent


class Proxy:
    def __init__(self, delay: float, target: str = "127.0.0.1:5432") -> None:
        self.delay = delay
        self.target = target
        self.port = 0
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Proxy:
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.proxy",
                "--target",
                self.target,
                "--delay",
                str(self.delay),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().split()
        self.port = int(line[1])
        return self

    def stats(self) -> tuple[int, int]:
        """(round trips, connections) so far."""
        assert self._proc is not None and self._proc.stdin and self._proc.stdout
        self._proc.stdin.write("\n")
        self._proc.stdin.flush()
        _, requests, connections = self._proc.stdout.readline().split()
        return int(requests), int(connections)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)
