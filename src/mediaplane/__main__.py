from __future__ import annotations

from mediaplane.cli import main

main()
