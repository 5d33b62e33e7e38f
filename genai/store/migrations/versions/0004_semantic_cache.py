"""cache: semantic cache entries, hit log, counters

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('cache_counters',
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('deployment', sa.String(length=200), nullable=False),
    sa.Column('lookups', sa.BigInteger(), nullable=False),
    sa.Column('exact_hits', sa.BigInteger(), nullable=False),
    sa.Column('semantic_hits', sa.BigInteger(), nullable=False),
    sa.Column('tokens_saved', sa.BigInteger(), nullable=False),
    sa.Column('cost_saved_usd', sa.Float(), nullable=False),
    sa.Column('false_hits', sa.BigInteger(), nullable=False),
    sa.Column('stores', sa.BigInteger(), nullable=False),
    sa.Column('evictions', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_cache_counters_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id', 'deployment', name=op.f('pk_cache_counters'))
    )
    op.create_table('cache_entries',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('exact_key', sa.String(length=32), nullable=False),
    sa.Column('scope', sa.String(length=32), nullable=False),
    sa.Column('deployment', sa.String(length=200), nullable=False),
    sa.Column('adapter', sa.String(length=200), nullable=False),
    sa.Column('prompt_version', sa.String(length=200), nullable=False),
    sa.Column('params', sa.String(length=32), nullable=False),
    sa.Column('kb_version', sa.String(length=200), nullable=False),
    sa.Column('revision', sa.String(length=40), nullable=False),
    sa.Column('question', sa.Text(), nullable=True),
    sa.Column('vector', sa.LargeBinary(), nullable=True),
    sa.Column('answer', sa.JSON(), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('tokens', sa.Integer(), nullable=False),
    sa.Column('cost_usd', sa.Float(), nullable=False),
    sa.Column('hits', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_cache_entries_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cache_entries'))
    )
    with op.batch_alter_table('cache_entries', schema=None) as batch_op:
        batch_op.create_index('ix_cache_entries_deployment', ['project_id', 'deployment'], unique=False)
        batch_op.create_index(batch_op.f('ix_cache_entries_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index('ix_cache_entries_request', ['project_id', 'request_id'], unique=False)
        batch_op.create_index('ix_cache_entries_scope', ['project_id', 'scope'], unique=False)
        batch_op.create_index('ix_cache_entries_used', ['project_id', 'used_at'], unique=False)
        batch_op.create_index('uq_cache_entries_key', ['project_id', 'exact_key'], unique=True)

    op.create_table('cache_hits',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('entry_id', sa.String(length=32), nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_cache_hits_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cache_hits'))
    )
    with op.batch_alter_table('cache_hits', schema=None) as batch_op:
        batch_op.create_index('ix_cache_hits_request', ['project_id', 'request_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cache_hits_ts'), ['ts'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('cache_hits', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cache_hits_ts'))
        batch_op.drop_index('ix_cache_hits_request')

    op.drop_table('cache_hits')
    with op.batch_alter_table('cache_entries', schema=None) as batch_op:
        batch_op.drop_index('uq_cache_entries_key')
        batch_op.drop_index('ix_cache_entries_used')
        batch_op.drop_index('ix_cache_entries_scope')
        batch_op.drop_index('ix_cache_entries_request')
        batch_op.drop_index(batch_op.f('ix_cache_entries_expires_at'))
        batch_op.drop_index('ix_cache_entries_deployment')

    op.drop_table('cache_entries')
    op.drop_table('cache_counters')
