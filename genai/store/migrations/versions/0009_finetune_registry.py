"""registry for fine-tuning: adapters' chat template, tokenizer hash, vLLM lint and
metadata; models imported from GGUF (a stored artifact)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-16
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('adapters', schema=None) as batch_op:
        batch_op.add_column(sa.Column('chat_template', sa.Text(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('tokenizer_sha256', sa.String(length=64), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('lint', sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
        batch_op.add_column(sa.Column('metadata', sa.JSON(), nullable=False, server_default=sa.text("'{}'")))

    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.add_column(sa.Column('artifact', sa.String(length=64), nullable=False, server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.drop_column('artifact')

    with op.batch_alter_table('adapters', schema=None) as batch_op:
        batch_op.drop_column('metadata')
        batch_op.drop_column('lint')
        batch_op.drop_column('tokenizer_sha256')
        batch_op.drop_column('chat_template')
