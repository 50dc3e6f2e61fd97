"""`python -m pangea_mcp` runs the command line."""

import sys

from pangea_mcp.cli import main

sys.exit(main())
