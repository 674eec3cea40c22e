#!/usr/bin/env python
"""Transfer study over all task pairs: python experiments/study.py --preset quick --seeds 1"""

import sys

from jaxnas.experiments.study import main

if __name__ == "__main__":
    sys.exit(main())
