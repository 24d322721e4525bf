"""What every command shares: the settings, the projects file and the stores they name."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import click

from wa_monitor.core.config import ProjectsConfig, load_config, resolve_config_path
from wa_monitor.core.settings import Settings, load_settings
from wa_monitor.sources.bridge import BridgeStore
from wa_monitor.store.database import Purpose, open_review_store
from wa_monitor.store.review_store import ReviewStore


@dataclass
class App:
    """What every command shares: where the config and settings come from."""

    config_option: str | None
    env_file: Path | None
    _settings: Settings | None = field(default=None, init=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(env_file=self.env_file)
        return self._settings

    @property
    def config_path(self) -> Path:
        return resolve_config_path(self.config_option, self.settings.environ)

    def config(self) -> ProjectsConfig:
        return load_config(self.config_path)

    def review_store(
        self, *, purpose: Purpose = "write", check_schema: bool = True, pre_ping: bool = True
    ) -> ReviewStore:
        """The review database, through the one door (`database.open_review_store`)."""
        return open_review_store(
            self.settings, purpose=purpose, check_schema=check_schema, pre_ping=pre_ping
        )

    def bridge(self) -> BridgeStore:
        bridge = BridgeStore(self.settings.require_bridge(), self.settings.whatsapp_store_path)
        bridge.open()
        return bridge


pass_app = click.make_pass_decorator(App)
