"""``make soak``: the "nothing lost" soak test (see ``soak/run.py``)."""
