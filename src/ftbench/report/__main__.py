import sys

from ftbench.report.cli import main

sys.exit(main())
