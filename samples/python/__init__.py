# The Python SDK and its sample worker; see README.md.
