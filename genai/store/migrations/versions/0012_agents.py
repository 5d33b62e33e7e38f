"""agents: agent runs, their LangGraph checkpoints and pending writes (kept in this store,
per project), their step traces, the outcomes of their tool calls (a resumed run does not
run a finished side-effecting call again) and the approvals they wait for

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('agent_checkpoint_writes',
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('thread_id', sa.String(length=64), nullable=False),
    sa.Column('checkpoint_ns', sa.String(length=200), nullable=False),
    sa.Column('checkpoint_id', sa.String(length=64), nullable=False),
    sa.Column('task_id', sa.String(length=64), nullable=False),
    sa.Column('idx', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=200), nullable=False),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('value', sa.LargeBinary(), nullable=False),
    sa.Column('task_path', sa.String(length=500), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_agent_checkpoint_writes_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('thread_id', 'checkpoint_ns', 'checkpoint_id', 'task_id', 'idx', name=op.f('pk_agent_checkpoint_writes'))
    )
    with op.batch_alter_table('agent_checkpoint_writes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agent_checkpoint_writes_project_id'), ['project_id'], unique=False)

    op.create_table('agent_checkpoints',
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('thread_id', sa.String(length=64), nullable=False),
    sa.Column('checkpoint_ns', sa.String(length=200), nullable=False),
    sa.Column('checkpoint_id', sa.String(length=64), nullable=False),
    sa.Column('parent_checkpoint_id', sa.String(length=64), nullable=True),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('checkpoint', sa.LargeBinary(), nullable=False),
    sa.Column('metadata_type', sa.String(length=40), nullable=False),
    sa.Column('metadata_blob', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_agent_checkpoints_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('thread_id', 'checkpoint_ns', 'checkpoint_id', name=op.f('pk_agent_checkpoints'))
    )
    with op.batch_alter_table('agent_checkpoints', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agent_checkpoints_project_id'), ['project_id'], unique=False)

    op.create_table('agent_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.String(length=40), nullable=False),
    sa.Column('agent', sa.String(length=100), nullable=False),
    sa.Column('definition', sa.JSON(), nullable=False),
    sa.Column('input', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=30), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('output', sa.Text(), nullable=True),
    sa.Column('steps', sa.Integer(), nullable=False),
    sa.Column('tokens', sa.Integer(), nullable=False),
    sa.Column('cost_usd', sa.Float(), nullable=False),
    sa.Column('session', sa.String(length=200), nullable=True),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_agent_runs_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_runs')),
    sa.UniqueConstraint('run_id', name=op.f('uq_agent_runs_run_id'))
    )
    with op.batch_alter_table('agent_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agent_runs_project_id'), ['project_id'], unique=False)

    op.create_table('agent_approvals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('run_pk', sa.Integer(), nullable=False),
    sa.Column('call_id', sa.String(length=100), nullable=False),
    sa.Column('tool', sa.String(length=100), nullable=False),
    sa.Column('arguments', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('edited_arguments', sa.JSON(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('decided_by', sa.String(length=120), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_agent_approvals_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_pk'], ['agent_runs.id'], name=op.f('fk_agent_approvals_run_pk_agent_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_approvals')),
    sa.UniqueConstraint('run_pk', 'call_id', name=op.f('uq_agent_approvals_run_pk_call_id'))
    )
    with op.batch_alter_table('agent_approvals', schema=None) as batch_op:
        batch_op.create_index('ix_agent_approvals_project_status', ['project_id', 'status'], unique=False)

    op.create_table('agent_steps',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('run_pk', sa.Integer(), nullable=False),
    sa.Column('index', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('agent', sa.String(length=100), nullable=False),
    sa.Column('status', sa.String(length=30), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('latency_ms', sa.Float(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_agent_steps_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_pk'], ['agent_runs.id'], name=op.f('fk_agent_steps_run_pk_agent_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_steps')),
    sa.UniqueConstraint('run_pk', 'index', name=op.f('uq_agent_steps_run_pk_index'))
    )
    with op.batch_alter_table('agent_steps', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agent_steps_project_id'), ['project_id'], unique=False)

    op.create_table('agent_tool_calls',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('run_pk', sa.Integer(), nullable=False),
    sa.Column('call_id', sa.String(length=100), nullable=False),
    sa.Column('tool', sa.String(length=100), nullable=False),
    sa.Column('arguments', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('result', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_agent_tool_calls_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_pk'], ['agent_runs.id'], name=op.f('fk_agent_tool_calls_run_pk_agent_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_tool_calls')),
    sa.UniqueConstraint('run_pk', 'call_id', name=op.f('uq_agent_tool_calls_run_pk_call_id'))
    )
    with op.batch_alter_table('agent_tool_calls', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agent_tool_calls_project_id'), ['project_id'], unique=False)

def downgrade() -> None:
    with op.batch_alter_table('agent_tool_calls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agent_tool_calls_project_id'))

    op.drop_table('agent_tool_calls')
    with op.batch_alter_table('agent_steps', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agent_steps_project_id'))

    op.drop_table('agent_steps')
    with op.batch_alter_table('agent_approvals', schema=None) as batch_op:
        batch_op.drop_index('ix_agent_approvals_project_status')

    op.drop_table('agent_approvals')
    with op.batch_alter_table('agent_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agent_runs_project_id'))

    op.drop_table('agent_runs')
    with op.batch_alter_table('agent_checkpoints', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agent_checkpoints_project_id'))

    op.drop_table('agent_checkpoints')
    with op.batch_alter_table('agent_checkpoint_writes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agent_checkpoint_writes_project_id'))

    op.drop_table('agent_checkpoint_writes')
