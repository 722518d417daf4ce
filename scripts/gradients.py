"""Gradients through time on our layers: norms, the adding problem, clipping.

    python scripts/gradients.py norms --length 201
    python scripts/gradients.py adding --length 100 --cell lstm,gru,tanh --seeds 3
    python scripts/gradients.py clipping --seeds 5

Same as `nlpapps gradients ...`; `--help` lists every option; see docs/gradients.md.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nlpapps.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["gradients", *sys.argv[1:]]))
