"""Generated bridge stores, cached by (size, seed), and the projects file the benchmarks use."""

from __future__ import annotations

import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path

from wa_monitor.core.config import ProjectsConfig, parse_config
from wa_monitor.sim import DropTruth, SimGroup, bench_groups, generate_store

DATA = Path(__file__).resolve().parent / ".data"
N_GROUPS = 50
N_MONITORED = 20
ZONE = "Africa/Johannesburg"


@dataclass(frozen=True)
class Fixture:
    """A cached bridge store and what was posted into it."""

    directory: Path
    n_messages: int
    seed: int
    groups: list[SimGroup]
    drops: dict[tuple[str, str], DropTruth]

    @property
    def messages_db(self) -> Path:
        return self.directory / "messages.db"

    @property
    def whatsapp_db(self) -> Path:
        return self.directory / "whatsapp.db"

    def copy_to(self, target: Path) -> Fixture:
        """A private copy (for benchmarks that append to the store)."""
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.messages_db, target / "messages.db")
        shutil.copy(self.whatsapp_db, target / "whatsapp.db")
        return Fixture(target, self.n_messages, self.seed, self.groups, self.drops)

    @property
    def monitored(self) -> list[SimGroup]:
        """20 of the 50 groups, spread over busy and quiet ones."""
        return self.groups[::2][:N_MONITORED]

    def monitored_drops(self) -> dict[tuple[str, str], DropTruth]:
        jids = {g.jid for g in self.monitored}
        return {k: v for k, v in self.drops.items() if k[0] in jids}


def projects_yaml(monitored: list[SimGroup], pattern: str | None = None) -> str:
    lines = [f"timezone: {ZONE}"]
    if pattern:
        lines.append(f"drop_pattern: '{pattern}'")
    lines.append("projects:")
    for i, g in enumerate(monitored):
        lines += [
            f"  - name: P{i:02d} {g.name}",
            "    enabled: true",
            f'    group_jid: "{g.jid}"',
            f'    description: "{g.name}"',
        ]
    return "\n".join(lines) + "\n"


def config(directory: Path, fx: Fixture) -> ProjectsConfig:
    """Write the projects file monitoring `fx`'s 20 groups into `directory`; return it."""
    path = directory / "projects.yaml"
    text = projects_yaml(fx.monitored)
    path.write_text(text)
    return parse_config(text, path)


def fixture(n_messages: int, seed: int = 1) -> Fixture:
    """The store of `n_messages` for `seed`, generated once and kept in bench/.data/."""
    directory = DATA / f"store-{n_messages}-{seed}"
    truth_file = directory / "truth.pickle"
    if truth_file.is_file():
        groups, drops = pickle.loads(truth_file.read_bytes())
        return Fixture(directory, n_messages, seed, groups, drops)
    if directory.exists():
        shutil.rmtree(directory)
    tmp = DATA / f".tmp-{n_messages}-{seed}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    # The groups are kept with the store: the generator may change, the cache must not lie.
    groups = bench_groups(N_GROUPS)
    truth = generate_store(
        tmp / "messages.db",
        tmp / "whatsapp.db",
        groups=groups,
        n_messages=n_messages,
        seed=seed,
    )
    drops = dict(truth.drops)
    (tmp / "truth.pickle").write_bytes(pickle.dumps((groups, drops)))
    tmp.rename(directory)
    return Fixture(directory, n_messages, seed, groups, drops)
