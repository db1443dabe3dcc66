"""Optional adapters (payments, e-commerce webhooks, forwarders) built on the public API
of ``bot_analytics``; ``bot_analytics`` never imports them."""
