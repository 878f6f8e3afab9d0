"""``python -m framebus``: the same as the ``framebus`` command."""

import sys

from ._cli import main

sys.exit(main())
