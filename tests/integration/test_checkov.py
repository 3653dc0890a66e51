"""checkov on the infrastructure: ``infra/template.json`` and what ``chalice package`` makes of the app.

The check set is checkov's CloudFormation policies (IAM least privilege, encryption, logging...).
Findings that do not apply are skipped in ``.checkov.yaml``, each with its reason; this test fails on

* any other failed check (a new resource or policy that breaks one), and
* any skip that no longer matches a finding (the reason is gone: remove the skip).

checkov is not in the project virtualenv: it pins ``boto3==1.35.49`` and ``packaging<24``, which
cannot live next to the project's boto3 and pytest 9. ``make test`` installs it into
``.run/checkov-venv``; ``CHECKOV=/path/to/checkov`` points the test at another one. Runs offline
(``--skip-download``). About 3 s: two checkov runs side by side, one with the skips and one without.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_deploy_artifacts import packaged  # noqa: F401  (module-scoped fixture)

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / ".checkov.yaml"
TEMPLATE = ROOT / "infra" / "template.json"
TIMEOUT = 300


def checkov_executable() -> str:
    """``$CHECKOV``, else the tool venv ``make`` builds, else one next to this Python, else on PATH."""
    candidates = [os.environ.get("CHECKOV"), str(ROOT / ".run" / "checkov-venv" / "bin" / "checkov"),
                  str(Path(sys.executable).with_name("checkov")), shutil.which("checkov")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(
        "checkov is not installed: run `make test` (it builds .run/checkov-venv), or "
        "`python3 -m venv .run/checkov-venv && .run/checkov-venv/bin/pip install -r requirements-checkov.txt`, "
        "or set CHECKOV=/path/to/checkov"
    )


def documented_skips() -> dict[str, str]:
    """The ``skip-check`` entries of ``.checkov.yaml`` with the comment block above each (its reason)."""
    skips: dict[str, str] = {}
    comment: list[str] = []
    in_list = False
    for line in CONFIG.read_text().splitlines():
        stripped = line.strip()
        if re.match(r"^skip-check\s*:", line):
            in_list, comment = True, []
            continue
        if not in_list:
            continue
        if stripped.startswith("#"):
            text = stripped.lstrip("#").strip()
            if not text.startswith("---"):
                comment.append(text)
        elif stripped.startswith("- "):
            skips[stripped[2:].strip()] = " ".join(comment)
            comment = []
        elif stripped and not line.startswith(" "):
            break  # the next top-level key
    return skips


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BC_", "CKV_", "PRISMA_"))}
    env.update(LOG_LEVEL="WARNING", BC_SKIP_MAPPING="TRUE")
    return env


def _start(files: list[Path], workdir: Path, *, with_config: bool) -> subprocess.Popen[str]:
    """One checkov run over ``files``. It runs in ``workdir`` (no ``.checkov.yaml`` there: checkov
    would load one from its working directory), with the skips only when ``with_config``."""
    command = [checkov_executable(), "--compact", "-o", "json", "--framework", "cloudformation", "--skip-download"]
    if with_config:
        command += ["--config-file", str(CONFIG)]
    for path in files:
        command += ["-f", str(path)]
    return subprocess.Popen(command, cwd=workdir, env=_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _failed(process: subprocess.Popen[str]) -> tuple[list[dict[str, Any]], set[str], int]:
    """The failed checks of one finished run, the files it checked (known from the passed checks,
    listed unless ``quiet``) and how many resources it saw. checkov exits 1 when a check failed."""
    out, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode in (0, 1), f"checkov crashed ({process.returncode}):\n{err[-3000:]}"
    try:
        report = json.loads(out) if out.strip() else []
    except ValueError:
        pytest.fail(f"checkov did not print JSON:\n{out[:2000]}\n{err[-2000:]}")
    reports = report if isinstance(report, list) else [report]
    failed: list[dict[str, Any]] = []
    files: set[str] = set()
    resources = 0
    for item in reports:
        if not isinstance(item, dict):
            continue
        results = item.get("results") or {}
        failed.extend(results.get("failed_checks") or [])
        for check in (*(results.get("passed_checks") or []), *(results.get("failed_checks") or [])):
            files.add(Path(check.get("file_path", "")).name)
        summary = item.get("summary") or {}
        assert not summary.get("parsing_errors"), f"checkov could not parse a template: {summary}"
        resources += int(summary.get("resource_count") or 0)
    return failed, files, resources


def _describe(checks: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"  {c['check_id']} {c.get('resource')} in {Path(c.get('file_path', '')).name}: {c.get('check_name')}"
        for c in sorted(checks, key=lambda c: (c["check_id"], str(c.get("resource"))))
    )


@pytest.fixture(scope="module")
def findings(packaged: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:  # noqa: F811
    """Both templates, checked with the documented skips and without them (in parallel)."""
    files, workdir = [TEMPLATE, packaged / "sam.json"], tmp_path_factory.mktemp("checkov")
    started = time.monotonic()
    gated, everything = _start(files, workdir, with_config=True), _start(files, workdir, with_config=False)
    (gated_failed, _quiet, gated_resources), (all_failed, all_files, all_resources) = _failed(gated), _failed(everything)
    print(f"checkov took {time.monotonic() - started:.1f}s")
    return {"gated": gated_failed, "all": all_failed, "files": all_files,
            "resources": (gated_resources, all_resources)}


def test_every_skip_has_a_reason() -> None:
    skips = documented_skips()
    assert skips, ".checkov.yaml has no skip-check list"
    for check_id, reason in skips.items():
        assert re.fullmatch(r"CKV2?_AWS_\d+", check_id), check_id
        assert check_id in reason and len(reason) > 80, f"{check_id} needs a comment above it saying why it is skipped"


def test_no_failed_check_beyond_the_documented_skips(findings: dict[str, Any]) -> None:
    failed = findings["gated"]
    assert not failed, "checkov findings (fix them, or skip them in .checkov.yaml with a reason):\n" + _describe(failed)


def test_every_skip_still_matches_a_finding(findings: dict[str, Any]) -> None:
    found = {c["check_id"] for c in findings["all"]}
    stale = sorted(set(documented_skips()) - found)
    assert not stale, f"these skips match no finding any more; remove them from .checkov.yaml: {stale}"
    unexpected = [c for c in findings["all"] if c["check_id"] not in documented_skips()]
    assert not unexpected, _describe(unexpected)


def test_both_templates_were_checked_with_and_without_the_skips(findings: dict[str, Any]) -> None:
    assert {"template.json", "sam.json"} <= findings["files"], findings["files"]
    gated, everything = findings["resources"]
    assert gated == everything >= 10, findings["resources"]  # the table, the queue, functions, roles, API
