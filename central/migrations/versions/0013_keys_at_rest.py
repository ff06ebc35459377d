"""Signing keys at rest (issue 18): room for each private key wrapped by a key-encryption
key (``wrapped_key``: AES-GCM nonce + ciphertext + tag) and the id of that KEK
(``kek_id``); the plain column may now be empty, and a row holds one form or the other.

The migration needs no secret: it cannot wrap, since the KEK never enters the database and
`festgate-central migrate` may run where the KEK is not. Central wraps the plain keys that
remain the first time it starts with its KEK (`central.keys.wrap_plain_keys`), then empties
the plain column; from this revision on, new keys are only ever stored wrapped.

Revision ID: 0013_keys_at_rest
Revises: 0012_device_software
"""

from __future__ import annotations

from alembic import op

revision = "0013_keys_at_rest"
down_revision = "0012_device_software"
branch_labels = None
depends_on = None

SCHEMA = """
ALTER TABLE signing_key
    ADD COLUMN wrapped_key bytea,
    ADD COLUMN kek_id text CHECK (kek_id ~ '^[0-9a-f]{16}$'),
    ALTER COLUMN private_key DROP NOT NULL,
    ADD CONSTRAINT signing_key_one_form CHECK (
        (private_key IS NULL) = (wrapped_key IS NOT NULL AND kek_id IS NOT NULL)
        AND (wrapped_key IS NULL) = (kek_id IS NULL));
CREATE INDEX signing_key_kek ON signing_key (kek_id) WHERE kek_id IS NOT NULL;
"""


def upgrade() -> None:
    """Apply this revision (forward only): the wrapped form beside the plain one."""
    op.execute(SCHEMA)
