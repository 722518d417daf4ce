"""Continue prompts with the shipped Shakespeare language model (or --model DIR).

    python scripts/generate.py "ROMEO:"
    python scripts/generate.py "ROMEO:" --temperature 0.7 --top-p 0.9 --seed 3
    python scripts/generate.py "JULIET:" --max-new-tokens 400 --stop '\n\n' --stream
    python scripts/generate.py                        (no prompt: from the start of a line)

Same as `nlpapps generate ...`; `--help` lists every option.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nlpapps.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["generate", *sys.argv[1:]]))
