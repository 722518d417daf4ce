"""Export: what a trained model becomes to be served or shipped, as files. The graphs it writes
are the `tf.Module`s of `nlpapps.serving`; this package converts, writes and checks.

    saved_model_writer.py         writing a SavedModel folder safely (`write_savedmodel`)
    model_folder.py               a model folder again from a training folder, for any app
                                  whose registry entry names an `export_folder`
    translator_folder.py          the translator's `export_folder`
    language_model_folder.py      the language model's `export_folder`
    question_answering_folder.py  the question-answering model's SavedModel and folder
    tflite.py                     LiteRT (TFLite) conversion, quantization, the op audit
    translator_conversion.py      the translator's signatures and int8 calibration inputs
    language_model_conversion.py  the language model's signatures, calibration and metadata
    litert_report.py              how exported LiteRT files compare with their SavedModel

Each SavedModel holds its tokenizer, weights and decoding loops, so it runs with `tensorflow`
and `tensorflow_text` alone; each LiteRT file with LiteRT and the TF Text ops alone
(`nlpapps.serving.litert_translator`, `nlpapps.serving.litert_language_model`).
"""
