"""Why an install, refresh or rollback did not happen; the message is meant for the operator."""

from __future__ import annotations


class GeoDBError(Exception):
    """A GeoIP database operation failed; the installed database is unchanged."""


class SourceError(GeoDBError):
    """The source refused or does not have what was asked for (bad URL, 404, bad metadata)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class SourceUnavailable(SourceError):
    """The source could not be reached or timed out; worth retrying later."""


class VerificationError(GeoDBError):
    """The downloaded database failed a check (checksum, format, type, age, probes)."""
