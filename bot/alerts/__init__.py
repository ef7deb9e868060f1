"""Failure alerts: ingest, dedup, grouping, routing, silences, escalation and storm control.

Public surface, by module (kept as separate imports so that `bot.db.models`, which registers
the alert tables, and `bot.settings`, which reads `AlertsConfig`, never import each other):

- `bot.alerts.model`    Severity, AlertStatus, AlertEvent, Matcher, views (pure rules)
- `bot.alerts.config`   AlertsConfig (the `alerts:` section of the YAML file)
- `bot.alerts.service`  AlertService: ingest, tick, acknowledge, resolve, silence...
- `bot.alerts.sources`  event builders for workflow, rotation, iconik, expiry and health failures
- `bot.alerts.health`   scheduled connector health checks
- `bot.alerts.http`     `POST /alerts` for other systems
- `bot.alerts.ids`      action ids of the alert buttons; `bot.alerts.payloads` their values
"""
