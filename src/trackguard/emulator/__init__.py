"""A strict local Customer.io Track API: workspace state, faults, request log and read API."""
