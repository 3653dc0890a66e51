"""``make bytecode``: the bytecode the deployment packages carry, so a cold start compiles
(almost) nothing.

Lambda cannot write bytecode (``/var/task`` and ``/opt`` are read-only): a module imported
without usable bytecode is compiled from source on every cold start. Chalice packs
``chalicelib/`` as it is on disk, ``__pycache__`` folders included, and builds the layer from the
requirements' wheels (sources only) plus ``vendor/`` as it is. So this writes chalicelib's
bytecode beside it, and the layer's (``requirements.txt`` and what it requires, as installed
here: the same versions, so the same sources) into ``vendor/``.

Checked-hash bytecode (PEP 552): valid whatever the zip does to file times, and never used for a
source it was not made from (an edited file, another wheel's file is compiled again). Bytecode
whose source has not changed is kept as it is, so an unchanged layer keeps its hash and Chalice
reuses it. The tag is this interpreter's, the one ``chalice deploy`` takes the Lambda runtime
from. Still compiled at each cold start: ``app.py`` and Chalice's own ``chalice/app.py``, which
Chalice packs into the app without bytecode. docs/deploy.md.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import py_compile
import sys
from collections.abc import Iterator
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

_CHECKED_HASH = py_compile.PycInvalidationMode.CHECKED_HASH


def write_bytecode(project: Path, *, layer: bool = True) -> int:
    """Write chalicelib's bytecode in ``project`` and (``layer``) the layer's in ``project/vendor``;
    how many files were compiled (the others were current). SystemExit if chalicelib does not compile."""
    compiled = 0
    for source in sorted((project / "chalicelib").rglob("*.py")):
        relative = source.relative_to(project).as_posix()
        compiled += _compile(source, project / importlib.util.cache_from_source(relative), relative, required=True)
    for distribution in layer_distributions(project / "requirements.txt") if layer else []:
        for source, relative in _sources(distribution):
            target = project / "vendor" / importlib.util.cache_from_source(relative)
            compiled += _compile(source, target, relative, required=False)
    return compiled


def layer_distributions(requirements: Path) -> list[importlib.metadata.Distribution]:
    """The installed distributions the layer holds: the requirements and, transitively, theirs
    (with the extras asked for, for this interpreter's platform, as pip resolved them)."""
    wanted: list[tuple[str, frozenset[str]]] = []
    for line in requirements.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            requirement = Requirement(line)
            wanted.append((requirement.name, frozenset(requirement.extras)))
    found: dict[str, importlib.metadata.Distribution] = {}
    extras_of: dict[str, set[str]] = {}
    while wanted:
        name, extras = wanted.pop()
        key = canonicalize_name(name)
        if key in found and extras <= extras_of[key]:
            continue
        distribution = found.get(key) or importlib.metadata.distribution(name)
        found[key] = distribution
        extras_of.setdefault(key, set()).update(extras)
        for spec in distribution.requires or []:
            requirement = Requirement(spec)
            asked = [{"extra": extra} for extra in extras_of[key]] or [{"extra": ""}]
            if requirement.marker is None or any(requirement.marker.evaluate(env) for env in asked):
                wanted.append((requirement.name, frozenset(requirement.extras)))
    return [found[key] for key in sorted(found)]


def _sources(distribution: importlib.metadata.Distribution) -> Iterator[tuple[Path, str]]:
    for file in distribution.files or []:
        relative = file.as_posix()
        if relative.endswith(".py") and not relative.startswith("..") and ".dist-info/" not in relative:
            yield Path(str(distribution.locate_file(file))), relative


def _compile(source: Path, target: Path, shown_as: str, *, required: bool) -> int:
    """Compile ``source`` into ``target`` unless it holds it already; 1 if compiled. ``shown_as``:
    the path the bytecode names (Python shows the file it was loaded from in tracebacks anyway);
    ``required``: a source that does not compile stops the deploy (else it is left without bytecode)."""
    data = source.read_bytes()
    if _current(target, data):
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        py_compile.compile(str(source), cfile=str(target), dfile=shown_as, doraise=True, invalidation_mode=_CHECKED_HASH)
    except py_compile.PyCompileError as exc:
        if required:
            raise SystemExit(f"{source} does not compile: {exc.msg}") from exc
        return 0  # a dependency's file for another Python (a template, a backport): left as it is
    return 1


def _current(target: Path, source: bytes) -> bool:
    """``target`` is checked-hash bytecode of exactly ``source`` for this interpreter."""
    try:
        with target.open("rb") as bytecode:
            header = bytecode.read(16)
    except OSError:
        return False
    return (
        header[:4] == importlib.util.MAGIC_NUMBER
        and int.from_bytes(header[4:8], "little") == 0b11  # hash-based, checked
        and header[8:16] == importlib.util.source_hash(source)
    )


if __name__ == "__main__":
    count = write_bytecode(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd())
    print(f"bytecode: {count} file(s) compiled", file=sys.stderr)
