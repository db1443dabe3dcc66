"""Pure analysis for bot-analytics: statistics over plain frames and frozen dataclasses.

Imports nothing from ``bot_analytics`` or aiogram.
"""
