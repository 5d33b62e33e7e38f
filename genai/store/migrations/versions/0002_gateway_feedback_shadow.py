"""gateway: usage targets, feedback, shadow results

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('feedback',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('deployment', sa.String(length=200), nullable=False),
    sa.Column('target', sa.String(length=100), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('principal', sa.String(length=120), nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_feedback_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_feedback'))
    )
    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.create_index('ix_feedback_arm', ['project_id', 'deployment', 'target'], unique=False)
        batch_op.create_index(batch_op.f('ix_feedback_request_id'), ['request_id'], unique=False)

    op.create_table('shadow_results',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('deployment', sa.String(length=200), nullable=False),
    sa.Column('primary_target', sa.String(length=100), nullable=False),
    sa.Column('shadow_target', sa.String(length=100), nullable=False),
    sa.Column('status', sa.String(length=40), nullable=False),
    sa.Column('similarity', sa.Float(), nullable=True),
    sa.Column('primary_text', sa.Text(), nullable=False),
    sa.Column('shadow_text', sa.Text(), nullable=False),
    sa.Column('shadow_tokens', sa.Integer(), nullable=False),
    sa.Column('shadow_cost_usd', sa.Float(), nullable=False),
    sa.Column('shadow_latency_ms', sa.Float(), nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_shadow_results_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shadow_results'))
    )
    with op.batch_alter_table('shadow_results', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shadow_results_project_id'), ['project_id'], unique=False)

    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('target', sa.String(length=100), nullable=False, server_default=''))
        batch_op.create_index(batch_op.f('ix_usage_records_request_id'), ['request_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_usage_records_request_id'))
        batch_op.drop_column('target')

    with op.batch_alter_table('shadow_results', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shadow_results_project_id'))

    op.drop_table('shadow_results')
    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_feedback_request_id'))
        batch_op.drop_index('ix_feedback_arm')

    op.drop_table('feedback')
