"""``python -m framebus``: the same as the ``framebus`` command."""

import sys

from .cli import main

sys.exit(main())
