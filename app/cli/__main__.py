"""`python -m app.cli`, the same as `portal`."""

from app.cli import main

main()
