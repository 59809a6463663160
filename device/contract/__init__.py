"""What the station and the hub agree on, imported by both and by neither's internals: the MQTT
contract (`topics`: every topic and payload) and the records both sides keep (`records`: what a rep,
a session and a fault are, the errors a store raises, and the one interface the page reads a store
through)."""
