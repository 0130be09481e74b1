"""trackguard's HTTP servers: the gateway, the strict local Customer.io emulator, and the runner."""
