"""The store: SQLAlchemy models, Alembic migrations, the audit chain, the lifecycle."""

from studyhub.store.audit import ChainReport, append_event, verify_chain
from studyhub.store.db import DEFAULT_URL, Store, open_store, resolve_url

__all__ = [
    "DEFAULT_URL",
    "ChainReport",
    "Store",
    "append_event",
    "open_store",
    "resolve_url",
    "verify_chain",
]
