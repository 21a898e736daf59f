"""HTTP plumbing for the functions: endpoint wrapper, request parsing, routing, server hooks, shutdown."""
