"""The suite's clean-tree check at work: pytest as a process over a small checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_tree_check import checkout

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("writes", ["tracked", "tmp_path"])
def test_a_run_that_writes_a_tracked_file_fails_loudly(tmp_path: Path, writes: str) -> None:
    conftest = "from tests.conftest import pytest_sessionfinish, pytest_sessionstart\n"
    target = "Path('docs/shot.png')" if writes == "tracked" else "tmp_path / 'shot.png'"
    body = f"    ({target}).write_bytes(b'png')\n"
    test = "from pathlib import Path\n\ndef test_shot(tmp_path):\n" + body
    root = checkout(
        tmp_path / "project",
        {"conftest.py": conftest, "test_it.py": test, "docs/shot.png": "old", "pytest.ini": ""},
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"],
        cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if writes == "tracked":
        assert run.returncode == 1, run.stdout + run.stderr
        assert "1 passed" in run.stdout  # the test itself passed: the run still fails
        assert "the test run changed tracked files: docs/shot.png" in run.stdout
    else:
        assert run.returncode == 0, run.stdout + run.stderr
        assert "tracked files" not in run.stdout
