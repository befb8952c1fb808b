"""The action contract ``motcua.action/1`` (and its upcaster from ``/2``): schema, reasons."""
