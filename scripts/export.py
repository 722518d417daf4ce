"""Export a translator for serving (SavedModel) or for phones (TFLite / LiteRT).

    python scripts/export.py --format tflite --quantize dynamic
    python scripts/export.py --quantize all --report --pairs data/test.tsv --limit 500 \
        --calibrate data/train.tsv
    python scripts/export.py --stepwise --quantize int8 --calibrate data/train.tsv
    python scripts/export.py --format savedmodel --model runs/translator-en-de \
        --output saved_models/translator-en-de

Without --output each file goes beside the model folder, e.g.
saved_models/translator-en-de.dynamic.tflite. Same as `nlpapps export ...`; `--help` lists
every option.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nlpapps.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
