"""`wa-monitor bridge`: a WhatsApp bridge in Python (neonize), writing the bridge's store."""
