"""evaluation: suite versions (a dataset version plus metrics and thresholds) and each eval
run's per-row results, written as the run goes (resume) and found again by cache key;
alias moves keep their evidence (the eval run of an eval-gated promotion); shadow results
keep the request the two answers answered (``genai eval shadow`` judges them)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('eval_results',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('eval_run_id', sa.Integer(), nullable=False),
    sa.Column('row_index', sa.Integer(), nullable=False),
    sa.Column('repeat', sa.Integer(), nullable=False),
    sa.Column('cache_key', sa.String(length=64), nullable=False),
    sa.Column('answer', sa.JSON(), nullable=False),
    sa.Column('scores', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['eval_run_id'], ['eval_runs.id'], name=op.f('fk_eval_results_eval_run_id_eval_runs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_eval_results_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_eval_results')),
    sa.UniqueConstraint('eval_run_id', 'row_index', 'repeat', name=op.f('uq_eval_results_eval_run_id_row_index_repeat'))
    )
    with op.batch_alter_table('eval_results', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_eval_results_eval_run_id'), ['eval_run_id'], unique=False)
        batch_op.create_index('ix_eval_results_project_cache', ['project_id', 'cache_key'], unique=False)

    op.create_table('eval_suites',
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.Column('definition', sa.JSON(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], name=op.f('fk_eval_suites_dataset_id_datasets')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_eval_suites_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_eval_suites')),
    sa.UniqueConstraint('project_id', 'name', 'content_hash', name=op.f('uq_eval_suites_project_id_name_content_hash')),
    sa.UniqueConstraint('project_id', 'name', 'version', name=op.f('uq_eval_suites_project_id_name_version'))
    )
    with op.batch_alter_table('eval_suites', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_eval_suites_project_id'), ['project_id'], unique=False)

    with op.batch_alter_table('alias_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('evidence', sa.String(length=64), nullable=True))

    with op.batch_alter_table('shadow_results', schema=None) as batch_op:
        batch_op.add_column(sa.Column('prompt_text', sa.Text(), nullable=False, server_default=''))



def downgrade() -> None:
    with op.batch_alter_table('shadow_results', schema=None) as batch_op:
        batch_op.drop_column('prompt_text')

    with op.batch_alter_table('alias_events', schema=None) as batch_op:
        batch_op.drop_column('evidence')

    with op.batch_alter_table('eval_suites', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_eval_suites_project_id'))

    op.drop_table('eval_suites')
    with op.batch_alter_table('eval_results', schema=None) as batch_op:
        batch_op.drop_index('ix_eval_results_project_cache')
        batch_op.drop_index(batch_op.f('ix_eval_results_eval_run_id'))

    op.drop_table('eval_results')
