"""crmlens: self-hosted CRM analytics."""

__version__ = "0.1.0"
