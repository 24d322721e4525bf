"""The project's own exceptions: every message says what went wrong and what to do."""

from __future__ import annotations


class WaMonitorError(Exception):
    """Base of every error WA Monitor reports to an operator."""

    exit_code = 1


class ConfigError(WaMonitorError):
    """The projects file or a setting is invalid."""

    exit_code = 2

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class BridgeStoreError(WaMonitorError):
    """The bridge's messages.db is missing, unreadable or not a bridge store."""


class BridgeBusyError(BridgeStoreError):
    """The bridge holds a lock on messages.db longer than the busy timeout."""


class ReviewDatabaseError(WaMonitorError):
    """The review database is unreachable or refused an operation."""


class ReviewDataError(ReviewDatabaseError):
    """The review database refused a value (too long, NUL in text, a constraint): it is up."""


class ConstraintViolation(ReviewDataError):
    """The review database refused a row that breaks one of its constraints."""

    def __init__(self, message: str, *, constraint: str | None = None) -> None:
        self.constraint = constraint  # the constraint's name, as PostgreSQL knows it
        super().__init__(message)


class UniqueViolation(ConstraintViolation):
    """A row with the same unique key is already there (`constraint` says which key)."""


class SharedDatabaseError(WaMonitorError):
    """A non-prod environment is pointed at prod's review database."""

    exit_code = 2


class SchemaVersionError(ReviewDatabaseError):
    """The review database schema is not the one this version of WA Monitor knows."""


class ForeignSchemaError(SchemaVersionError):
    """The review database's schema record is not one any WA Monitor wrote."""

    exit_code = 2


class MediaStoreError(WaMonitorError):
    """The media store cannot be reached or refused an operation (the reason is in the message)."""


class MediaRejected(MediaStoreError):
    """A file was refused and nothing of it was kept: `reason` is mismatch, oversize or bad_key."""

    def __init__(self, message: str, *, reason: str) -> None:
        self.reason = reason
        super().__init__(message)


class MediaNotFound(MediaStoreError):
    """The media store has no file under that SHA-256."""


class MediaDamaged(MediaStoreError):
    """A stored file no longer hashes to its name: damaged or replaced after it was stored."""


class PhotoDecisionError(ReviewDataError):
    """A reviewer's decision on a photo cannot be applied; the message says what to change."""


class UnknownPhoto(PhotoDecisionError):
    """No photo of a monitored group has that id."""
