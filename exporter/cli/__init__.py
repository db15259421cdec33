"""The command line: `vault-drift check|sync|report|serve|demo`, parsing and exit codes."""
