"""dlp: per-session pseudonymisation vault

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('dlp_vault',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.String(length=128), nullable=False),
    sa.Column('entity_type', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('token', sa.String(length=96), nullable=False),
    sa.Column('value_mac', sa.String(length=64), nullable=False),
    sa.Column('ciphertext', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_dlp_vault_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dlp_vault'))
    )
    with op.batch_alter_table('dlp_vault', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dlp_vault_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index('uq_dlp_vault_token', ['project_id', 'session_id', 'token'], unique=True)
        batch_op.create_index('uq_dlp_vault_value', ['project_id', 'session_id', 'entity_type', 'value_mac'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('dlp_vault', schema=None) as batch_op:
        batch_op.drop_index('uq_dlp_vault_value')
        batch_op.drop_index('uq_dlp_vault_token')
        batch_op.drop_index(batch_op.f('ix_dlp_vault_expires_at'))

    op.drop_table('dlp_vault')
