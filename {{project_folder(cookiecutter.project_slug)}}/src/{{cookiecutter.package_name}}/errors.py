"""Mistakes a user can fix, reported in one line rather than a traceback.

Every command raises :class:`UsageError` for a bad option, a missing or
malformed file, or a run folder that is not one; the command line
(``cli.main``) prints it as ``<program>: error: <message>`` and exits with
status 2, after the command has removed whatever it had started to write.
This module imports nothing heavy, so every command can use it.
"""

from __future__ import annotations

USAGE_EXIT_STATUS = 2
"""Exit status of a command stopped by a :class:`UsageError` (as argparse uses)."""


class UsageError(Exception):
    """A mistake in what was asked for; the message names the field or path and rule.

    The message is one line, written for the person at the command line, e.g.
    ``"configs/search.yaml: model.lr: low must be below high (got 0.1 >= 0.01)"``.
    """
