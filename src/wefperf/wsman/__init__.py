"""WS-Management push eventing, as Windows Event Forwarding speaks it (docs/wsman.md)."""
