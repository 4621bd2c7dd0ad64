import sys

from onnxops.cli import main

sys.exit(main())
