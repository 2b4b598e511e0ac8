"""`python -m convnext_tinyimagenet`: see cli.py."""

import sys

from convnext_tinyimagenet.cli import main

sys.exit(main())
