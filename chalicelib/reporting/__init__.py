"""The response-time report: one self-contained HTML page read from the table.

``data`` scans the table into per-conversation facts, ``model`` computes the numbers,
``charts`` draws inline SVG, ``html`` writes the page (English or Spanish), ``cli`` is
``python -m chalicelib.reporting`` (``make report``). Nothing here is imported by the
webhook path.
"""
