"""Failure alerts: ingest, dedup, grouping, routing, silences, escalation and storm control.

Modules (imported one by one, so that `bot.db.models`, which registers the alert tables, and
`bot.config.opsgate`, which reads `AlertsConfig`, never import each other through this package):

- `model`     Severity, AlertStatus, AlertEvent, Matcher, views: pure rules
- `config`    AlertsConfig, the `alerts:` section of the YAML file
- `grouping`  group_wait / group_interval / repeat_interval / escalation timings (pure)
- `routing`   which channel and mention an alert gets (pure)
- `storm`     per-channel pacing and the post / fold / defer plan (pure)
- `service`   AlertService: ingest, acknowledge, resolve, silences, retry, incident pages, tick
- `tick`      the timed passes behind `AlertService.tick()`
- `messages`  the outbox rows that show alerts; `views` rows as view objects
- `silences`  silence queries and matching; `health` scheduled connector probes
- `sources`   events from workflow, rotation, iconik job and near-expiry failures
- `http`      `POST /alerts`; `ids` and `payloads` what the buttons carry; `batching` group commit
- `models`    the tables; `errors` the user-facing error tree
"""
