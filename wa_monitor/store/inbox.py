"""The webhook gateways' inbox in the review database: durable writes and the sequencer."""

from __future__ import annotations
