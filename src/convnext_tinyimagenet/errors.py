"""The one base class of the errors a person can fix.

Every module's error (a wrong config key, a missing dataset, a corrupt image, a failed checksum)
derives from :class:`ArtifactError`; the command line and the workflow's rule scripts turn it
into one line on the console, naming the file, key or value at fault.
"""

from __future__ import annotations


class ArtifactError(Exception):
    """A problem the user can fix, described in one line."""
