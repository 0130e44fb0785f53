"""The enclave side of heddle's trusted execution layer.

Every module in this package is part of an enclave's measurement: the loader reads
their exact bytes, hashes them together with the enclave application, and executes
those same bytes. Keep it free of imports from the rest of heddle so the measured
code is self-contained (the host imports the sans-I/O parts, such as ``wire``).
"""
