"""What every command shares: the settings, the projects file and the stores they name."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import click

from wa_monitor.bridge import BridgeStore
from wa_monitor.config import ProjectsConfig, load_config, resolve_config_path
from wa_monitor.settings import Settings, load_settings
from wa_monitor.store import ReviewStore


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

    def review_store(self, *, check_schema: bool = True, pre_ping: bool = True) -> ReviewStore:
        """The review database; a dev environment is refused prod's (environments.guard)."""
        from wa_monitor.environments import guard

        store = ReviewStore(self.settings.database_url, pre_ping=pre_ping)
        try:
            guard(self.settings, store)
            if check_schema:
                store.check_schema()
        except BaseException:
            store.dispose()
            raise
        return store

    def bridge(self) -> BridgeStore:
        bridge = BridgeStore(self.settings.require_bridge(), self.settings.whatsapp_store_path)
        bridge.open()
        return bridge


pass_app = click.make_pass_decorator(App)
