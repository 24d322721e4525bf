"""Deterministic WhatsApp-bridge stores with known truth, for the demo, tests and benchmarks.

Writes `messages.db` exactly as the `whatsapp-bridge` of lharries/whatsapp-mcp does
(schema, `INSERT OR REPLACE`, go-sqlite3 timestamp text, user-part or full-JID senders,
random hex message ids, media rows with empty content) and the whatsmeow tables of
`whatsapp.db` that name the senders (`whatsmeow_lid_map`, `whatsmeow_contacts`).

`generate_store` writes a whole store in bulk and returns a `SimTruth` of every drop
posted; `LiveSimulator` writes one event at a time for the demo and for live tests.

The package stands alone (it imports nothing else of wa_monitor), so the monitor is
tested against a bridge it does not share code with. Its modules, lowest first:
`values` (groups, members, rows, truth), `timestamps` (the bridge's time text),
`writer` (the bridge's schema and writes), `vocabulary` (what the groups say),
`compose` (who says what), `photos` (the pictures), `media` (the files behind media
rows, as the phone holds them), `bulk` and `live` (the two generators), and `bridge_api`
(the bridge's `/api/download` over those files).

The package stands alone apart from the tools its photos are drawn with (Pillow, numpy,
zxing-cpp for the barcodes).
"""

from wa_monitor.sim.bridge_api import BridgeMedia, DownloadAnswer, DownloadHandler
from wa_monitor.sim.bulk import bench_groups, generate_store
from wa_monitor.sim.live import EventKind, LiveSimulator, SimEvent, SteppingClock
from wa_monitor.sim.media import MediaMaker, MediaShares, PhotoTruth, origin_path
from wa_monitor.sim.photos import STEPS, Scene, render_jpeg
from wa_monitor.sim.timestamps import format_bridge_timestamp, parse_bridge_timestamp
from wa_monitor.sim.values import (
    ALL_DROP_FORMATS,
    DEFAULT_DROP_FORMATS,
    DEFAULT_DROP_PATTERN,
    DEFAULT_START,
    DEFAULT_TZ,
    DEMO_GROUPS,
    OUR_JID,
    OUR_PHONE,
    VARIANT_DROP_PATTERN,
    DropFormat,
    DropTruth,
    Member,
    MessageRow,
    SimGroup,
    SimTruth,
    normalise_drop,
)
from wa_monitor.sim.writer import MESSAGES_SCHEMA, StoreWriter, create_bridge_store

__all__ = [
    "ALL_DROP_FORMATS",
    "DEFAULT_DROP_FORMATS",
    "DEFAULT_DROP_PATTERN",
    "DEFAULT_START",
    "DEFAULT_TZ",
    "DEMO_GROUPS",
    "MESSAGES_SCHEMA",
    "OUR_JID",
    "OUR_PHONE",
    "STEPS",
    "VARIANT_DROP_PATTERN",
    "BridgeMedia",
    "DownloadAnswer",
    "DownloadHandler",
    "DropFormat",
    "DropTruth",
    "EventKind",
    "LiveSimulator",
    "MediaMaker",
    "MediaShares",
    "Member",
    "MessageRow",
    "PhotoTruth",
    "Scene",
    "SimEvent",
    "SimGroup",
    "SimTruth",
    "SteppingClock",
    "StoreWriter",
    "bench_groups",
    "create_bridge_store",
    "format_bridge_timestamp",
    "generate_store",
    "normalise_drop",
    "origin_path",
    "parse_bridge_timestamp",
    "render_jpeg",
]
