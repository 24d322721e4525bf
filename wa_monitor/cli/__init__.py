"""The `wa-monitor` command: every module's commands registered on one group."""
