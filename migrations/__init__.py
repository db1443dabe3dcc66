"""Alembic migrations for bot-analytics (installed as ``bot_analytics.migrations``)."""
