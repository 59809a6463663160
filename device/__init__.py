"""Hinge Station on-device runtime: frames -> pose -> hinge analysis -> signals and rep log."""
