"""Configuration: the environment (`env`) and the validated YAML file (`opsgate`), a leaf package.

It imports only domain types and connector settings, so every layer may read configuration and
none of it can pull the runtime in. Submodules are imported directly (`bot.config.env` stays
cheap for the CLI's start-up).
"""
