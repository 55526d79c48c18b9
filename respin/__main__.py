"""`python -m respin`: the same as the `respin` command."""

import sys

from respin.pipeline.cli import main

sys.exit(main())
