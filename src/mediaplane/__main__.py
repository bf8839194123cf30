from __future__ import annotations

from mediaplane.cli import main

if __name__ == "__main__":  # not when a spawned web worker re-imports it as __mp_main__
    main()
