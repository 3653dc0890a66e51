"""Shared test helpers (contract checking against published API specifications)."""
