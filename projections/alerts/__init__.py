"""The alerting role (spec/accountability.md §5, contract/interface.md "Alert delivery"): it reads
``motcua.events`` like a projection, keeps the open subjects in its own tables with its own
positions, decides alerts from a clock and the facts (``rules``), and delivers them from a
durable outbox (``outbox``), at least once, with a stable ``Idempotency-Key``."""
