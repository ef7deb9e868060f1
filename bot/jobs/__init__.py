"""Work that runs after the acknowledgement: the persisted job queue, the outbox, request
execution, the announcer that turns transitions into Slack messages, and scheduler leadership."""
