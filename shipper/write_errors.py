"""What a MongoDB write error says about one document: already there, not now, or never.

MongoDB's answer to an unordered insert names each refused document with a code. Only a
duplicate key on `_id` means the document is already stored (our `_id`s are deterministic);
a duplicate on any other unique index is a refusal of this document. Codes of the retryable-writes
specification (not primary, shutting down, interrupted by a failover, network) and transient
conflicts and timeouts mean "not now": the batch waits and is sent again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

DUPLICATE_KEY = 11000
DUPLICATE_KEY_CODES = frozenset({DUPLICATE_KEY, 11001, 12582})  # 11000 and its legacy forms
ID_INDEX = "_id_"

# Codes that say nothing against the document itself (names as in MongoDB's error_codes.yml):
# HostUnreachable 6, HostNotFound 7, LockTimeout 24, LockBusy 46, MaxTimeMSExpired 50,
# StaleShardVersion 63, WriteConcernFailed 64 (wtimeout), NetworkTimeout 89,
# ShutdownInProgress 91, WriteConflict 112, ReadConcernMajorityNotAvailableYet 134,
# StaleEpoch 150, PrimarySteppedDown 189, ExceededTimeLimit 262, SocketException 9001,
# NotPrimary (legacy) 10058, NotWritablePrimary 10107, StaleConfig 13388,
# NotPrimaryNoSecondaryOk 13435, NotPrimaryOrSecondary 13436, InterruptedAtShutdown 11600,
# Interrupted 11601, InterruptedDueToReplStateChange 11602.
TRANSIENT_CODES = frozenset({
    6, 7, 24, 46, 50, 63, 64, 89, 91, 112, 134, 150, 189, 262, 9001, 10058, 10107, 13388,
    13435, 13436, 11600, 11601, 11602,
})
# Labels the server (or pymongo) puts on an error that a retry may pass.
RETRYABLE_LABELS = frozenset({"RetryableWriteError", "TransientTransactionError",
                              "RetryableError", "SystemOverloadedError"})

_INDEX_IN_MESSAGE = re.compile(r" index: (.+?) dup key:")


def is_transient(code: object, labels: object = ()) -> bool:
    """True for an error that a later attempt can pass: a transient code or a retryable label."""
    return code in TRANSIENT_CODES or bool(RETRYABLE_LABELS.intersection(labels or ()))


def duplicate_index(error: Mapping[str, Any]) -> str | None:
    """The name of the unique index a duplicate-key error is about, None when it does not say.

    MongoDB gives `keyPattern` (and the name in `errmsg`: "... index: email_1 dup key: ...");
    FerretDB gives only "E11000 duplicate key error collection: db.c", so the caller must ask.
    """
    message = str(error.get("errmsg") or "")
    if found := _INDEX_IN_MESSAGE.search(message):
        return found.group(1)
    pattern = error.get("keyPattern")
    if isinstance(pattern, Mapping) and pattern:
        if list(pattern) == ["_id"]:
            return ID_INDEX
        return "_".join(f"{key}_{direction}" for key, direction in pattern.items())
    return None


def describe(error: Mapping[str, Any]) -> str:
    """A write error as a dead letter's reason: the code and the server's own message."""
    return f"MongoDB error {error.get('code')}: {error.get('errmsg')}"


def duplicate_reason(index: str | None, error: Mapping[str, Any]) -> str:
    """A dead letter's reason for a duplicate on a unique index other than `_id`."""
    key = error.get("keyValue")
    named = f"unique index {index}" if index else "a unique index (the server did not say which)"
    return (f"{named} refused a duplicate key{f' {dict(key)}' if key else ''}: "
            f"{describe(error)}")
