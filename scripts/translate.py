"""Translate English to German with the shipped model (or --model DIR).

    python scripts/translate.py "Where is the station?"
    python scripts/translate.py --beam 5 --nbest 3 < sentences.txt
    python scripts/translate.py "I love you." --plot-attention attention.png

Same as `nlpapps translate ...`; `--help` lists every option.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nlpapps.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["translate", *sys.argv[1:]]))
