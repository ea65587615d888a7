"""Makes `fjord_jepsen` importable from jepsen/ without installing it."""

import os
import sys

JEPSEN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if JEPSEN_DIR not in sys.path:
    sys.path.insert(0, JEPSEN_DIR)
