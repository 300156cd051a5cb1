"""Errors shared by every part's command line.

A leaf module: it imports nothing from mlmon, so any part may raise `CliError` without
depending on the umbrella CLI (`mlmon.cli`), which imports every part.
"""


class CliError(Exception):
    """An error the user can act on; printed as one line without a traceback."""
