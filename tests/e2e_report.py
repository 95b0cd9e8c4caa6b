"""What run_tests.py learns from a session: the end-to-end tests it skipped.

A pytest plugin (its hooks are imported by ``conftest.py``): when the
environment names a file in ``RUN_TESTS_E2E_REPORT``, the session writes
there how many ``e2e`` tests were selected and which skipped, with their
reasons. ``run_tests.py`` then fails a run whose end-to-end tier tested less
than it was asked to.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

# run_tests.py names a file here; the session lists the e2e tests it skipped in it.
E2E_REPORT_VARIABLE = "RUN_TESTS_E2E_REPORT"
SKIPPED: dict[str, str] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Note every skipped end-to-end test, with its reason."""
    if report.skipped and "e2e" in report.keywords:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        SKIPPED.setdefault(report.nodeid, reason.removeprefix("Skipped: "))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write the e2e tests selected and skipped where run_tests.py reads them."""
    target = os.environ.get(E2E_REPORT_VARIABLE)
    if not target:
        return
    selected = sum(1 for item in session.items if item.get_closest_marker("e2e"))
    report = {"selected": selected, "skipped": sorted(SKIPPED.items())}
    Path(target).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
