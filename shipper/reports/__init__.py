"""Reports: rollup queries, rendering (terminal, JSON, CSV, HTML) and rebuild from raw documents.

Shippers insert partials (partial.py); the rollup job (job.py) folds them (fold.py, visits.py)
into the `rollups` collection; see docs/reports.md for the storage layout and its guarantees.
"""
