"""`station db backup`: a consistent copy of the rep database while the station runs."""
from __future__ import annotations

import argparse

from device.commands.tables import print_table, write_json
from device.config import Settings
from device.station.backups import backup_database


def backup(args: argparse.Namespace, settings: Settings) -> int:
    backup = backup_database(settings.db_path, args.dest, keep=args.keep)
    print_table([backup.row()])
    if args.json:
        write_json(args.json, backup.row())
    return 0
