"""``python -m chalicelib.reporting --out report.html [--lang es]``: see ``cli``."""

import sys

from chalicelib.reporting.cli import main

sys.exit(main())
