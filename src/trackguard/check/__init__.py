"""The offline ``check`` door: request files in, verdict summaries out, and sample traffic."""
