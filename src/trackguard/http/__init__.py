"""HTTP plumbing shared by the servers: raw-ASGI helpers, the uvicorn runner, the request log."""
