"""bot-analytics: self-hosted analytics and optimization for aiogram 3 bots.

    from bot_analytics import Analytics
    analytics = Analytics.from_config("config.yaml")
    analytics.setup(dp)
"""

from .capture.context import UpdateContext
from .config import ConfigError, Settings, load_config
from .plugin import RECORDED_UPDATE_TYPES, Analytics

__all__ = ["RECORDED_UPDATE_TYPES", "Analytics", "ConfigError", "Settings", "UpdateContext",
           "load_config"]
__version__ = "0.1.0"
