"""The warehouse layer: the only code that opens connections, writes and runs queries."""

from crmlens.warehouse.connection import DEFAULT_PATH, Warehouse, default_path
from crmlens.warehouse.migrations import MIGRATIONS, Migration, migrate

__all__ = ["DEFAULT_PATH", "MIGRATIONS", "Migration", "Warehouse", "default_path", "migrate"]
