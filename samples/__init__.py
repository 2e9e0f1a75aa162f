# Makes samples/ a Python package, so that `python3 -m unittest` run at the
# repository root discovers the SDK tests in samples/python.
