"""Latency collection: one device agent (agent.py), transports that carry it (collectors.py)."""
