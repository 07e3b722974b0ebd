"""Fleet deployment: Claude's managed configuration (mdm) and per-profile wrappers (wrap), as
plain functions; their commands are in gatekey.cli.fleet_cmds."""
