"""Ops console (issue 17): ops users get a password; browser sessions; failed logins.

A session is found by the sha256 of its cookie's random token (the token itself is never
stored, as with API tokens); it keeps its CSRF token, its expiry, the IP and user agent it
was made from, and is revocable. Failed logins are kept for the login limit (per user and
per address); successful ones leave no row there.

Revision ID: 0010_console
Revises: 0008_ops_surface (until 0009_facts_once lands on this branch; the lead re-chains)
"""

from __future__ import annotations

from alembic import op

revision = "0010_console"
# TEMPORARY: 0009_facts_once is another branch's; re-chain to it at merge.
down_revision = "0009_facts_once"
branch_labels = None
depends_on = None

SCHEMA = """
-- An argon2id hash (PHC string) of the user's console password; NULL: no console login.
ALTER TABLE ops_user ADD COLUMN password_hash text
    CHECK (password_hash IS NULL OR password_hash LIKE '$argon2%');

CREATE TABLE ops_session (
    id           uuid PRIMARY KEY,
    token_hash   bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),  -- sha256 of the cookie
    user_id      uuid NOT NULL REFERENCES ops_user(id),
    csrf_token   text NOT NULL CHECK (length(csrf_token) BETWEEN 32 AND 100),
    ip           text NOT NULL CHECK (length(ip) <= 100),
    user_agent   text NOT NULL CHECK (length(user_agent) <= 500),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    revoked_by   text
);
CREATE INDEX ops_session_user_idx ON ops_session (user_id, created_at);
-- What an admin lists: the sessions still usable.
CREATE INDEX ops_session_live_idx ON ops_session (expires_at) WHERE revoked_at IS NULL;

CREATE TABLE ops_login_failure (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    user_name text NOT NULL CHECK (length(user_name) <= 200),  -- as typed, lower case
    ip        text NOT NULL CHECK (length(ip) <= 100)
);
CREATE INDEX ops_login_failure_user_idx ON ops_login_failure (user_name, at);
CREATE INDEX ops_login_failure_ip_idx ON ops_login_failure (ip, at);
"""


def upgrade() -> None:
    """Apply this revision (forward only)."""
    op.execute(SCHEMA)
