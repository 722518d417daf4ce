"""Exporters: what a trained model becomes to be served or shipped.

    saved_model.py            writing a SavedModel folder safely (`write_savedmodel`)
    model_folder.py           a model folder again from a training folder (`export_model_folder`)
    translator.py             `TranslatorModule`: the translator's string-in/string-out graph
    language_model.py         `LanguageModelModule`: the language model's generation and scoring
    tflite.py                 LiteRT (TFLite) conversion of either, quantization, the op audit
    litert.py                 opening a file in LiteRT with the TF Text tokenizer ops
    litert_translator.py      `LiteRTTranslator`: running a translator file
    litert_language_model.py  `LiteRTLanguageModel`: running a language-model file
    report.py                 how exported files compare with their SavedModel

Each SavedModel holds its tokenizer, weights and decoding loops, so it runs with `tensorflow`
and `tensorflow_text` alone; each LiteRT file with LiteRT and the TF Text ops alone.
"""
