"""Helpdesk adapters: one interface (``base``), one module per helpdesk."""
