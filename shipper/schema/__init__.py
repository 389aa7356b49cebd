"""sitelog's MongoDB side: collection specs, setup and upgrades, client-side validation, retention.

See docs/schema.md for the collections, their indexes and rules, and the `[collections]` keys.
"""

from .collections import SCHEMA_VERSION, SPECS, CollectionSpec, IndexSpec
from .jobs import maintain, schedule_schema_jobs
from .retention import apply_retention
from .settings import CollectionsConfig, collections_settings
from .setup import SetupReport, setup_schema
from .validate import InvalidDocument, Validator

__all__ = [
    "SCHEMA_VERSION",
    "SPECS",
    "CollectionSpec",
    "CollectionsConfig",
    "IndexSpec",
    "InvalidDocument",
    "SetupReport",
    "Validator",
    "apply_retention",
    "collections_settings",
    "maintain",
    "schedule_schema_jobs",
    "setup_schema",
]
