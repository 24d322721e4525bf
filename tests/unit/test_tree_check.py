"""The suite's clean-tree check (tests/tree_check.py, wired in tests/conftest.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.tree_check import changed_tracked, newly_changed

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "commit.gpgsign=false"]


def checkout(root: Path, files: dict[str, str]) -> Path:
    """A git checkout holding `files`, committed."""
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    subprocess.run([*GIT, "init", "-q"], cwd=root, check=True)
    subprocess.run([*GIT, "add", "."], cwd=root, check=True)
    subprocess.run([*GIT, "commit", "-qm", "start"], cwd=root, check=True)
    return root


def test_changed_tracked_files_are_found_and_untracked_ones_ignored(tmp_path: Path) -> None:
    root = checkout(tmp_path / "repo", {"a.txt": "a", "docs/b.png": "b", "c.txt": "c"})
    assert changed_tracked(root) == set()
    (root / "docs/b.png").write_text("rewritten")
    (root / "c.txt").unlink()
    (root / "new.txt").write_text("untracked")
    assert changed_tracked(root) == {"docs/b.png", "c.txt"}
    assert changed_tracked(tmp_path / "not-a-checkout") is None
    assert newly_changed({"a.txt"}, {"a.txt", "docs/b.png"}) == ["docs/b.png"]
    assert newly_changed(None, {"a.txt"}) == [] and newly_changed(set(), None) == []
