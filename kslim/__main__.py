import sys

from kslim.cli import main

sys.exit(main())
