"""The inbox as a `Source`: the monitor reads webhook messages as it reads a messages.db."""

from __future__ import annotations
