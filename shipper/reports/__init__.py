"""Reports: rollup queries, rendering (terminal, JSON, CSV, HTML) and rebuild from raw documents.

The rollups themselves are written by the `rollups` aggregator (shipper/aggregate/rollups.py) as
batches ship; see docs/reports.md for the storage layout and its guarantees.
"""
