"""published apps: a project's deployment published as a public chat app of the Hub
(its slug, the sealed key it calls the gateway with, the nonce of its browser tokens, the
origins that may embed it and its daily quota)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('published_apps',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('slug', sa.String(length=60), nullable=False),
    sa.Column('deployment', sa.String(length=200), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('key_prefix', sa.String(length=16), nullable=False),
    sa.Column('sealed_key', sa.Text(), nullable=False),
    sa.Column('token_nonce', sa.String(length=32), nullable=False),
    sa.Column('allowed_origins', sa.JSON(), nullable=False),
    sa.Column('requests_per_day', sa.Integer(), nullable=True),
    sa.Column('tokens_per_day', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_published_apps_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_published_apps')),
    sa.UniqueConstraint('slug', name=op.f('uq_published_apps_slug'))
    )
    with op.batch_alter_table('published_apps', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_published_apps_project_id'), ['project_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('published_apps', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_published_apps_project_id'))

    op.drop_table('published_apps')
