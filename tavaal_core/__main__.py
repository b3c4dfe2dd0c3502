"""``python -m tavaal_core``: see :mod:`tavaal_core.cli`."""
import sys

from .cli import main

sys.exit(main())
