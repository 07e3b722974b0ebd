"""Operator and debugging commands: inspect, doctor, check. Imported only when one runs."""
