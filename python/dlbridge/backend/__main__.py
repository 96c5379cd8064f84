"""Entry point of the companion process: ``python -m dlbridge.backend``."""
import os
import sys

from dlbridge.backend.companion import main

if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # py4j's daemon threads may still hold sockets; the JVM side is gone or done.
    os._exit(code)
