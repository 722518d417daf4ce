"""Serving: what runs a trained model string to string, for the apps' inference and for the
files that `nlpapps.export` writes.

    translator_module.py          `TranslatorModule`: the translator's string-in/string-out
                                  graph (tokenizer, model, greedy and beam decoding loops)
    language_model_module.py      `LanguageModelModule`: a language model's generation and
                                  scoring graphs
    question_answering_module.py  `QAModule`: the memory network's answering graph
    generation_config.py          `GenerationConfig`: how a language model continues a prompt
    prompt_warnings.py            what a user should know about how a prompt is read
    litert_interpreter.py         opening a LiteRT file with the TF Text tokenizer ops, its
                                  metadata
    litert_translator.py          `LiteRTTranslator`: running a translator's LiteRT file
    litert_language_model.py      `LiteRTLanguageModel`: running a language model's LiteRT file

The `tf.Module`s are built from `nlpapps.models` and `nlpapps.decoding` and know no app; the
SavedModel of each holds its tokenizer, weights and loops, so it runs with `tensorflow` and
`tensorflow_text` alone. The LiteRT runners, the configuration and the prompt notes import no
TensorFlow, so that a command runs a file without it; this package's `__init__` imports
nothing.
"""
