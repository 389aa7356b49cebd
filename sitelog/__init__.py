"""sitelog: an embedded, SQLite-buffered logging agent for websites.

Data flows agent (capture) -> buffer (SQLite) -> shipper (enrich, ship to MongoDB); geodb serves the
shipper's GeoIP lookups. This core package holds what they share: configuration and the CLI.
"""

__version__ = "0.1.0"
