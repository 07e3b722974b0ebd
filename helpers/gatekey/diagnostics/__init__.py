"""What inspect, doctor and check find, as plain functions returning results (no click).

gatekey.diagnose_cli holds the commands: their options, the report on stdout, the exit code.
"""
