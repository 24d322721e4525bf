"""What every command shares: the settings, the projects file and the stores they name."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from wa_monitor.core.config import (
    ProjectsConfig,
    host_zone_name,
    load_config,
    resolve_config_path,
)
from wa_monitor.core.errors import WaMonitorError
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

    def use_config(self, config_option: str) -> None:
        self.config_option = config_option

    def use_env_file(self, env_file: Path) -> None:
        self.env_file = env_file
        self._settings = None

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

    def zone(self) -> tzinfo:
        """The business zone times are shown in: the projects file's, else the host's."""
        try:
            return self.config().zone
        except WaMonitorError:
            return ZoneInfo(host_zone_name())

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

CONFIG_HELP = "Projects file (default: $WA_MONITOR_CONFIG, else config/projects.yaml)."
ENV_FILE_HELP = "Load settings from this .env file (the environment wins over it)."


def _app_for(ctx: click.Context) -> App:
    app = ctx.find_object(App)
    if app is None:
        app = ctx.obj = App(None, None)
    return app


def _set_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None and not ctx.resilient_parsing:
        _app_for(ctx).use_config(value)


def _set_env_file(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    if value is not None and not ctx.resilient_parsing:
        _app_for(ctx).use_env_file(value)


def add_app_options(command: click.Command) -> None:
    """Let `command` (and, for a group, every command in it) take `--config` and `--env-file`
    after its name too; given at several levels, the one nearest the end of the line wins."""
    if not any(p.name == "app_config" for p in command.params):
        command.params += [
            click.Option(
                ["--config", "app_config"],
                metavar="PATH",
                expose_value=False,
                callback=_set_config,
                help=CONFIG_HELP,
            ),
            click.Option(
                ["--env-file", "app_env_file"],
                type=click.Path(path_type=Path),
                metavar="PATH",
                expose_value=False,
                callback=_set_env_file,
                help=ENV_FILE_HELP,
            ),
        ]
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            add_app_options(sub)


class AppGroup(click.Group):
    """The `wa-monitor` group: each command it hands out takes `--config` and `--env-file`."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            add_app_options(command)
        return command
