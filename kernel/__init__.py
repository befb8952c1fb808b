"""The shared kernel: what the engine, the projections and the producers all use.

Settings, the Kafka clients and the bundled broker, metrics, the error roots, the working-day
calendar and the action contract (``kernel.contract``). It imports nothing of the three parts
(an import contract checks it).
"""
