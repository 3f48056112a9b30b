"""The C kernel set under its earlier name: importing minidl.backend.c_kernels gives minidl.backend.c.

One object under both names (not a copy of its namespace), so whatever is set on one is seen
through the other.
"""

import sys

from minidl.backend import c

sys.modules[__name__] = c
