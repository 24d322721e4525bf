"""A test run must leave the git checkout's tracked files as it found them.

tests/conftest.py notes which tracked files differ from the index when the session
starts and fails the run when others do at its end (a test writing docs/screenshots/, a
CLI writing next to the working directory). Files already changed before the run are
someone's work in progress and are left out, so in a clean checkout (CI) every tracked
file is covered. Not in a git checkout (an sdist, no git), or with
WA_MONITOR_TREE_CHECK=0: nothing is checked.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

MESSAGE = (
    "the test run changed tracked files: {files}. A test must write only under tmp_path; "
    "screenshots for docs/ only when asked (WA_MONITOR_SCREENSHOTS=1). Restore them with "
    "`git checkout -- FILE`. If a person edited one meanwhile, run again (or set "
    "WA_MONITOR_TREE_CHECK=0 while editing the tree during runs)."
)


def changed_tracked(root: Path) -> set[str] | None:
    """The tracked files whose content differs from the index (changed, deleted); None
    outside a git checkout. The index against the work tree only: commits made meanwhile
    (HEAD moving) change no file."""
    try:
        result = subprocess.run(
            # No optional locks: the check must never write the index of a tree in use.
            ["git", "--no-optional-locks", "diff", "--name-only", "--no-renames", "-z"],
            cwd=root, capture_output=True, timeout=60, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    names = result.stdout.decode("utf-8", "surrogateescape").split("\0")
    return {name for name in names if name}


def newly_changed(before: set[str] | None, after: set[str] | None) -> list[str]:
    """The files changed during the run, sorted; none when either side is unknown."""
    if before is None or after is None:
        return []
    return sorted(after - before)
