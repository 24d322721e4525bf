"""Feedback to the groups: compose, outbox, delivery through the bridge."""
