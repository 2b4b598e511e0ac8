"""The one base class of the errors a person can fix: the command line and the rule scripts
turn any of them into one console line that names the file, key or value at fault."""

from __future__ import annotations


class ArtifactError(Exception):
    """A problem the user can fix, described in one line."""
