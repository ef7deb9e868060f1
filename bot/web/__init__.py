"""HTTP and Socket Mode: the aiohttp application, Slack request signing, webhooks and the alert
intake route."""
