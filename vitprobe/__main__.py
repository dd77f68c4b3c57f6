"""``python -m vitprobe`` (and ``torchrun -m vitprobe``) runs the command line."""

import sys

from vitprobe.cli import main

sys.exit(main())
