"""The hub: one gym's stations meet on an MQTT broker; the hub keeps every rep and serves the gym page."""
