"""cache estimates: each project's evidence on its semantic hits per deployment and
verifier-score block (hits, reported and re-checked errors), the online half of the
semantic cache's error bound, shared by every gateway process; the hit log keeps the
deployment and verifier score of a judged hit, for feedback to find

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('cache_estimates',
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('deployment', sa.String(length=200), nullable=False),
    sa.Column('curve', sa.String(length=32), nullable=False),
    sa.Column('block', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('hits', sa.BigInteger(), nullable=False),
    sa.Column('estimated', sa.Float(), nullable=False),
    sa.Column('reported', sa.BigInteger(), nullable=False),
    sa.Column('rechecked', sa.BigInteger(), nullable=False),
    sa.Column('recheck_wrong', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_cache_estimates_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id', 'deployment', 'curve', 'block', name=op.f('pk_cache_estimates'))
    )
    with op.batch_alter_table('cache_hits', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deployment', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('score', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('cache_hits', schema=None) as batch_op:
        batch_op.drop_column('score')
        batch_op.drop_column('deployment')

    op.drop_table('cache_estimates')
