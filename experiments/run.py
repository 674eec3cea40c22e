#!/usr/bin/env python
"""Transfer experiment: python experiments/run.py --source=class_object --target=room_layout"""

import sys

from jaxnas.experiments.transfer_cli import main

if __name__ == "__main__":
    sys.exit(main())
