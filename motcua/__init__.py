"""motcua: event-sourced dossier lifecycle engine and live Decision 766 service index."""

__version__ = "0.1.0"
