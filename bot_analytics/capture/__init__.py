"""Capturing updates and replies inside the bot."""

from .context import UpdateContext

__all__ = ["UpdateContext"]
