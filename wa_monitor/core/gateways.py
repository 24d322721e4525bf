"""The gateways WA Monitor takes messages from and sends feedback through.

- `bridge`: a bridge's SQLite store (messages.db) read in place: the upstream Go bridge,
  a fork of it, or `wa-monitor bridge`; feedback through its `POST /api/send`.
- `waha`: WAHA's webhook into the inbox; feedback with WAHA's `sendText`.
- `evolution`: Evolution API's webhook into the inbox; feedback with its `sendText`.
- `bridge-webhook`: the maintained Go bridge fork's webhook into the inbox; feedback
  through the bridge's `POST /api/send`, as for `bridge`.

A project names its gateway (`gateway:` in projects.yaml), else the GATEWAY setting's.
"""

from __future__ import annotations

from typing import Final

BRIDGE: Final = "bridge"
WAHA: Final = "waha"
EVOLUTION: Final = "evolution"
BRIDGE_WEBHOOK: Final = "bridge-webhook"
GATEWAYS: Final = (BRIDGE, WAHA, EVOLUTION, BRIDGE_WEBHOOK)
# The gateways whose messages reach the monitor through the inbox in the review database.
INBOX_GATEWAYS: Final = (WAHA, EVOLUTION, BRIDGE_WEBHOOK)


def gateway_of(project_gateway: str | None, default: str) -> str:
    """A project's gateway: its own `gateway:`, else the GATEWAY setting's (`default`)."""
    return project_gateway or default
