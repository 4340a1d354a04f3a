"""The capacity search: the choice of rates (no I/O) and the runs that test each one."""
