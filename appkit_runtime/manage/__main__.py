"""`python -m appkit_runtime.manage ...`"""

from __future__ import annotations

import sys

from appkit_runtime.manage import main

sys.exit(main())
