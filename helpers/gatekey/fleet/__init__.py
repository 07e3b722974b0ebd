"""Fleet deployment commands: mdm (Claude managed configuration) and wrap (per-profile wrappers)."""
