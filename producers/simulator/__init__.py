"""A seeded, reproducible province: the actions its one-stop-shop systems would send.

``generate(cfg)`` yields ``motcua.action/1`` dicts in global time order: the agency tree and the
procedure catalog first, then dossier and feedback lifecycles. Every random draw comes from one
``random.Random(cfg.seed)`` and nothing reads the clock, so a seed always gives the same bytes.

The parts: ``config`` (what to simulate, every rate named), ``clock`` (simulated time, office
hours and office time), ``catalog`` (agencies, procedures and their internal processes),
``receptions`` (when dossiers arrive), ``dossiers`` (one dossier's lifecycle), ``staff`` (each
agency's units and officials, some slow), ``handovers`` (a dossier's control sheet),
``feedback``, and ``stream`` (the actions in order).
"""

from producers.simulator.clock import TZ
from producers.simulator.config import SimConfig
from producers.simulator.stream import SCHEMA, generate, simulate_live, write_ndjson

__all__ = ["SCHEMA", "TZ", "SimConfig", "generate", "simulate_live", "write_ndjson"]
