"""Alembic migrations of central's schema (raw SQL, forward only)."""
