"""`station retire`: a station leaving the gym removes itself from Home Assistant (every discovery
config emptied) and from the hub's floor (its retained state and availability emptied). Its reps
stay at the hub. Run it before wiping or re-purposing the station (deploy/README.md)."""
from __future__ import annotations

import argparse

from device.config import Settings
from device.station.broker_link import retire_station


def command(args: argparse.Namespace, settings: Settings) -> int:
    cleared = retire_station(settings.mqtt)
    print(f"retired {settings.mqtt.station_id}: {cleared} retained messages emptied (Home Assistant's entities "
          "and the hub's floor card go); its reps stay at the hub")
    return 0
