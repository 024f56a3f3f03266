"""horae-conformance: check that a plugin program speaks horae's plugin protocol.

It starts the plugin through horae's own launcher (the code the agent uses), runs a suite of
cases against it (handshake, cookie, versions, health, calls, streaming, large output,
concurrency, cancellation, shutdown, host death) and reports each as passed, failed or skipped.
`cli.main` is the `horae-conformance` command; nothing in horae imports this package.
"""

import os

# gRPC's C core logs at INFO when a plugin closes its connection (GOAWAY after Shutdown): that is
# what the cases provoke, not news for whoever reads the report. Set before grpc is imported.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
