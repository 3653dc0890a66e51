"""socialdesk's logic: platforms, the table, the ticket sync, the helpdesk adapters."""

import os

# We use no pydantic plugins: without this, building the first model scans every
# installed package's entry points for them.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
