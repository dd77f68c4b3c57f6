"""Sub-commands of the ``vitprobe`` command line; each module has ``register(subparsers)``."""
