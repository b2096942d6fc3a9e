"""Distributions: Instagram posts as persisted jobs (scheduled posts survive a restart).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('distributions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('content_id', sa.Uuid(), nullable=True),
    sa.Column('asset_id', sa.Uuid(), nullable=True),
    sa.Column('media_bucket', sa.String(length=63), nullable=False),
    sa.Column('media_key', sa.String(length=512), nullable=False),
    sa.Column('caption', sa.Text(), nullable=False),
    sa.Column('alt_text', sa.String(length=1000), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('publish_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('container_id', sa.String(length=64), nullable=True),
    sa.Column('media_id', sa.String(length=64), nullable=True),
    sa.Column('permalink', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['asset_id'], ['assets.id'], name=op.f('fk_distributions_asset_id_assets'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['content_id'], ['content.id'], name=op.f('fk_distributions_content_id_content'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_distributions'))
    )
    op.create_index('ix_distributions_state_next_attempt', 'distributions', ['state', 'next_attempt_at'], unique=False)
    op.create_index(op.f('ix_distributions_content_id'), 'distributions', ['content_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_distributions_content_id'), table_name='distributions')
    op.drop_index('ix_distributions_state_next_attempt', table_name='distributions')
    op.drop_table('distributions')
