"""The `warden` command: worker, up, down, simulate, run, bench."""
