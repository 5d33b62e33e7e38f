"""rag: what each knowledge-bot answer was built from

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('kb_answers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('deployment', sa.String(length=200), nullable=False),
    sa.Column('kb_name', sa.String(length=100), nullable=False),
    sa.Column('kb_version', sa.Integer(), nullable=True),
    sa.Column('prompt_version', sa.String(length=200), nullable=False),
    sa.Column('chunks', sa.JSON(), nullable=False),
    sa.Column('cited', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_kb_answers_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kb_answers'))
    )
    with op.batch_alter_table('kb_answers', schema=None) as batch_op:
        batch_op.create_index('ix_kb_answers_project_request', ['project_id', 'request_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_kb_answers_kb_name'), ['kb_name'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('kb_answers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_kb_answers_kb_name'))
        batch_op.drop_index('ix_kb_answers_project_request')
    op.drop_table('kb_answers')
