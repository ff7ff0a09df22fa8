import sys

from framekd.cli import main

sys.exit(main())
