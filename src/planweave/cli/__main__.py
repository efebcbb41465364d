"""``python -m planweave.cli``."""

from planweave.cli import main

main()
