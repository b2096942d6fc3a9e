"""Initial schema: content, tags, assets, scraped pages, subscribers, newsletters, deliveries.

Revision ID: 0001
Revises: 
Create Date: 2025-01-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table('content',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('content_type', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('quality_score', sa.Float(), nullable=True),
    sa.Column('generation', JSON_TYPE, nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_content'))
    )
    op.create_index('ix_content_status_created', 'content', ['status', 'created_at', 'id'], unique=False)
    op.create_index('ix_content_type_created', 'content', ['content_type', 'created_at'], unique=False)
    op.create_table('newsletters',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('send_requested_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_newsletters'))
    )
    op.create_table('scraped_pages',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('final_url', sa.Text(), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=500), nullable=True),
    sa.Column('excerpt', sa.Text(), nullable=True),
    sa.Column('content_sha256', sa.String(length=64), nullable=False),
    sa.Column('fetched_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scraped_pages'))
    )
    op.create_index(op.f('ix_scraped_pages_host'), 'scraped_pages', ['host'], unique=False)
    op.create_table('subscribers',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=True),
    sa.Column('preferences', JSON_TYPE, nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('confirm_token_hash', sa.String(length=64), nullable=True),
    sa.Column('confirm_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('unsubscribe_token', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('unsubscribed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscribers')),
    sa.UniqueConstraint('confirm_token_hash', name=op.f('uq_subscribers_confirm_token_hash')),
    sa.UniqueConstraint('email', name=op.f('uq_subscribers_email')),
    sa.UniqueConstraint('unsubscribe_token', name=op.f('uq_subscribers_unsubscribe_token'))
    )
    op.create_index(op.f('ix_subscribers_status'), 'subscribers', ['status'], unique=False)
    op.create_table('assets',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('content_id', sa.Uuid(), nullable=False),
    sa.Column('bucket', sa.String(length=63), nullable=False),
    sa.Column('key', sa.String(length=512), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['content_id'], ['content.id'], name=op.f('fk_assets_content_id_content'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assets'))
    )
    op.create_index(op.f('ix_assets_content_id'), 'assets', ['content_id'], unique=False)
    op.create_table('content_tags',
    sa.Column('content_id', sa.Uuid(), nullable=False),
    sa.Column('tag', sa.String(length=50), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['content_id'], ['content.id'], name=op.f('fk_content_tags_content_id_content'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('content_id', 'tag', name=op.f('pk_content_tags'))
    )
    op.create_index('ix_content_tags_tag', 'content_tags', ['tag'], unique=False)
    op.create_table('deliveries',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('newsletter_id', sa.Uuid(), nullable=False),
    sa.Column('subscriber_id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['newsletter_id'], ['newsletters.id'], name=op.f('fk_deliveries_newsletter_id_newsletters'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_deliveries_subscriber_id_subscribers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deliveries')),
    sa.UniqueConstraint('newsletter_id', 'subscriber_id', name='uq_deliveries_newsletter_subscriber')
    )
    op.create_index('ix_deliveries_newsletter_status', 'deliveries', ['newsletter_id', 'status'], unique=False)
    op.create_index(op.f('ix_deliveries_subscriber_id'), 'deliveries', ['subscriber_id'], unique=False)
    op.create_table('newsletter_items',
    sa.Column('newsletter_id', sa.Uuid(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('content_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['content_id'], ['content.id'], name=op.f('fk_newsletter_items_content_id_content'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['newsletter_id'], ['newsletters.id'], name=op.f('fk_newsletter_items_newsletter_id_newsletters'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('newsletter_id', 'position', name=op.f('pk_newsletter_items'))
    )
    op.create_index(op.f('ix_newsletter_items_content_id'), 'newsletter_items', ['content_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_newsletter_items_content_id'), table_name='newsletter_items')
    op.drop_table('newsletter_items')
    op.drop_index(op.f('ix_deliveries_subscriber_id'), table_name='deliveries')
    op.drop_index('ix_deliveries_newsletter_status', table_name='deliveries')
    op.drop_table('deliveries')
    op.drop_index('ix_content_tags_tag', table_name='content_tags')
    op.drop_table('content_tags')
    op.drop_index(op.f('ix_assets_content_id'), table_name='assets')
    op.drop_table('assets')
    op.drop_index(op.f('ix_subscribers_status'), table_name='subscribers')
    op.drop_table('subscribers')
    op.drop_index(op.f('ix_scraped_pages_host'), table_name='scraped_pages')
    op.drop_table('scraped_pages')
    op.drop_table('newsletters')
    op.drop_index('ix_content_type_created', table_name='content')
    op.drop_index('ix_content_status_created', table_name='content')
    op.drop_table('content')
