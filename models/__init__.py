"""Model manifest, fetch and quantize steps. Binaries live in the configured models directory."""
