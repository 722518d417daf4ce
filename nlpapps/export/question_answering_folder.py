"""A question-answering model's folders: the SavedModel of
`nlpapps.serving.question_answering_module.QAModule` written into its training folder, and a
folder with only what answering needs."""

from __future__ import annotations

from pathlib import Path

from nlpapps.apps.question_answering import (METRICS_FILE, VOCAB_FILE, QAConfig, Vocabulary,
                                             create_model)
from nlpapps.export.saved_model_writer import write_savedmodel, write_savedmodel_into
from nlpapps.serving.question_answering_module import QAModule


def export_qa(model, vocab: Vocabulary, config: QAConfig, out: Path,
              export: Path | None = None) -> None:
    """Writes the SavedModel into the training folder `out` (beside its checkpoints), and a
    folder with only what answering needs (SavedModel, config, vocabulary, metrics) at
    `export`: the SavedModel holds each weight once."""
    clean = create_model(config, vocab)  # its weights only: no optimizer state beside them
    clean.set_weights(model.get_weights())
    module = QAModule(clean, vocab, config.memory_size)
    files = {name: (Path(out) / name).read_bytes()
             for name in ("config.json", VOCAB_FILE, METRICS_FILE) if (Path(out) / name).exists()}
    write_savedmodel_into(module, Path(out), files)
    if export:
        write_savedmodel(module, Path(export), files)
