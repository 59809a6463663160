"""`python -m device` is the `station` command."""
import sys

from device.commands.cli import main

sys.exit(main())
