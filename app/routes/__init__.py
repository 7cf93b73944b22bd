"""HTTP routes, one module per area: thin layers that validate, call the engine and shape the
answer."""
