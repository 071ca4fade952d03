"""python -m ablations {list, show, run, report, bench, data, export, finetune}: see `ablations.cli`."""
import sys

from ablations.cli import main

if __name__ == "__main__":
    sys.exit(main())
