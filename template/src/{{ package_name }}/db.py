"""The database: the declarative base of every model, and the session dependency.

Connections come from the runtime: `APPKIT_DATABASE_URL`, else the embedded SQLite file.
"""

from __future__ import annotations

from appkit_runtime.db import get_engine, get_session
from sqlalchemy.orm import DeclarativeBase

__all__ = ["Base", "get_engine", "get_session"]


class Base(DeclarativeBase):
    """The base class of the service's models; Alembic migrates its metadata."""
