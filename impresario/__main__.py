"""``python -m impresario``: the same as the ``impresario`` command."""

import sys

from .cli import main

sys.exit(main())
