"""``make bytecode``: chalicelib's bytecode, which the deployment package carries.

Lambda cannot write bytecode (``/var/task`` is read-only): a module imported without usable
bytecode is compiled from source on every cold start. Chalice packs ``chalicelib/`` as it is on
disk, ``__pycache__`` folders included, so this writes them before ``chalice deploy``.
Checked-hash bytecode (PEP 552): valid whatever the zip does to file times, and never used for a
source it was not made from (an edited file is compiled again). The tag is this interpreter's,
the one ``chalice deploy`` takes the Lambda runtime from. What stays compiled at each cold
start: ``app.py`` and Chalice's own ``chalice/app.py``, which Chalice packs without bytecode, and
the layer's dependencies (docs/deploy.md).
"""

from __future__ import annotations

import compileall
import py_compile
import sys
from pathlib import Path


def write_bytecode(project: Path) -> None:
    """Compile ``project``'s chalicelib in place (checked-hash); SystemExit if a module does not compile."""
    if not compileall.compile_dir(
        str(project / "chalicelib"), quiet=1, invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH
    ):
        raise SystemExit("chalicelib does not compile")


if __name__ == "__main__":
    write_bytecode(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd())
