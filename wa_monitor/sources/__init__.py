"""Where messages come from: the Source protocol, the bridge's store, an in-memory source."""
