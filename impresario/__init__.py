"""Impresario: a data-center kernel in the actor model (command line and wiring)."""

__version__ = "0.1.0"
