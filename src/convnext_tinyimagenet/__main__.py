"""`python -m convnext_tinyimagenet`: see cli.py."""

import sys

from .cli import main

sys.exit(main())
