#!/usr/bin/env python3
"""The seed's command line, kept verbatim: see ``python3 start_service.py --help``."""

import sys

from service.cli import main

if __name__ == "__main__":
    sys.exit(main())
