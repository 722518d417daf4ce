"""Benchmarks that compare ratios measured inside one run.

    python scripts/benchmark.py layers [--rounds 5] [--steps 10] [--units 128 256 512 1024]
        [--min-seconds 0.5]
    python scripts/benchmark.py generate [--rounds 5] [--tokens 100] [--model DIR ... [--litert]]
    python scripts/benchmark.py generate-command [--rounds 5] [--tokens 500] [--model DIR]
        [--prompt TEXT]
    python scripts/benchmark.py translate [--batch 64] [--beam 5] [--rounds 5] [--model DIR]
    python scripts/benchmark.py train-step [--rounds 5] [--steps 3]
    python scripts/benchmark.py memory-step [--rounds 7] [--tokens 128]
    python scripts/benchmark.py projection [--rounds 15] [--units 128 512]
    python scripts/benchmark.py sums [--rounds 9] [--units 128 256 512]
    python scripts/benchmark.py saved-translators OLD NEW [--rounds 9] [--batch 64]
    python scripts/benchmark.py kept-tensors [--rounds 11]
    python scripts/benchmark.py startup [--rounds 3]

`layers`: tokens/s of nlpapps's LSTM and both GRU forms against `keras.layers.LSTM` /
`keras.layers.GRU` with the same weights, at widths 128 to 1024: training (forward + backward +
Adam update) at batch 32 and inference at batch 1 and 32, over 64 steps. Each round sweeps
every row, timing ours and the built-in in turns of about 0.1 s (in turn first), so that machine
noise hits both alike and every row's rounds span the whole run; prints each row's median ratio
and the quartiles of its rounds' ratios.

`generate`: new tokens/s of text generation at batch 1 and 32 on the language model in `--model`
(default: a model of the default `LanguageModelConfig` size, randomly initialized: speed does
not depend on the weights), sampling at temperature 1. The compiled loop (`decoding.decode`,
one `tf.while_loop` in one `tf.function` call) against a Python loop calling a compiled one-step
`tf.function` once per token (the "OneStep" model of the TensorFlow text-generation tutorial),
measured alternately; prints the median ratio. A third loop does only the weight products of
each step (the matmul floor): its ratio to the one-step loop bounds what any TensorFlow loop
over this model can reach. With `--litert` (and `--model`), the model's one-call TFLite files
(float32 and dynamic-range) are written to a temporary folder and their whole generation call
(tokenize, the compiled sampling loop, detokenize) is timed in LiteRT at batch 1 against the
same one-step loop. `--model` may be given several times (the LSTM language model and the
attentive one, say): each model's tables are printed in turn, in the same run.

`generate-command`: end-to-end `nlpapps generate PROMPT --max-new-tokens 500` at batch 1 with the
command's defaults (temperature 0.8, seed 0), start-up excluded: what the command runs by
default (`--runtime auto`: the model folder's LiteRT file, from the drawn text to the printed
string) against the TensorFlow text-generation tutorial's loop on the same model (a
`tf.function` per token calling the model's step with its states and drawing with
`tf.random.categorical`, the text decoded at the end), measured alternately; prints the median
ratio. The tutorial's loop is given token ids rather than strings at each step, which only
makes it faster; it reads the prompt one token per call (the file in one window), so a long
`--prompt` costs it more.

`translate`: sentences/s of the translator in `--model` at `--batch` sentences per call, greedy
and beam search, against the same network built from Keras's built-in layers (the TensorFlow
NMT tutorial's encoder-decoder: `Bidirectional(GRU)`, `AdditiveAttention`, `GRUCell`, `Dense`)
holding the same weights and decoded the tutorial's way, one compiled step per Python call;
measured alternately, median ratio. Its greedy translations are compared with ours (the same
weights, so the same words up to float rounding); its beam runs as many steps as our search
took, without the bookkeeping of finished hypotheses, which only makes it faster.

`train-step`: training steps per second of the shipped language model's recurrent stage and of
the shipped translator's network, with the LSTM's and GRU's gradient through time written out
(`nlpapps.layers.bptt`, what training runs) against the same networks with TensorFlow
differentiating the step loop, from the same weights, alternately; median ratio.

`memory-step`: milliseconds per step, in LiteRT at batch 1, of a loop that reads an attention
memory of the attentive language model's size (1,024 x 768) at every step, with the memory
rewritten at every step, moved under a `tf.cond`, or kept in blocks by two nested loops (the
shape of the files' generation loop, `decoding.decode_in_blocks`); see
`benchmark_memory_step`.

`projection`: milliseconds of one inference pass of our LSTM and both GRU forms (widths
`--units`, 64 steps) at batches 1 to 64, with the inputs projected for every step in one
matmul before the loop or by each step inside it, alternately; the ratio says where
`nlpapps.layers.rnn` switches from one to the other (`PROJECT_FIRST_BELOW`,
`PROJECT_INSIDE_MAX_KERNEL`).

`sums`: milliseconds of one training step (forward, backward, Adam) of our LSTM and both GRU
forms in a model (widths `--units`, batch 32, 64 steps, each step projecting its own input),
with the backward loop adding up the recurrent kernel's gradient step by step or in one matmul
over every step after it, the same weights, alternately; the ratio says where
`nlpapps.layers.bptt` switches from one to the other (`SUMS_IN_LOOP_MAX_KERNEL`).

`saved-translators`: two exports of a translator folder (an older SavedModel and the same
weights exported again, say), each served as `nlpapps translate --runtime tf` serves it (the
SavedModel's batched `translate` signature): whether every English sentence of
`tests/fixtures/pairs.en-de.tsv` gets the same best translation, greedy and beam 5, and the
sentences/s of each at `--batch` sentences per call, alternately; median ratio NEW/OLD.

`kept-tensors`: milliseconds per call of the shipped files in LiteRT at batch 1, opened as
plain interpreters and with every tensor kept (`open_interpreter(..., preserve_tensors=True)`,
how `LiteRTLanguageModel` generates), alternately: the language model drawing 500 tokens
after `ROMEO:` greedy and at temperature 0.8, and 300 with top-k 40 and top-p 0.9; the
translator's five first fixture sentences, greedy and beam 5. Says whether both draw the same
output; median ratio plain/kept. Then the peak memory (resident set) of a process that opens
one file either way and makes one such call, or scores the first 3,000 tokens of the fixture
test play with the language model's `score` signature.

`startup`: seconds from starting `nlpapps translate "Hello."` and `nlpapps generate ROMEO:` to
their first byte of output, with `--runtime auto` (the LiteRT file) and `--runtime tf`,
alternately, and what part of that is importing Python packages alone.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

LAYER_UNITS = (128, 256, 512, 1024)  # H of every layer row
TRAIN_SHAPE = (32, 64)  # (batch, steps) of a training row; the input is H wide
INFER_SHAPE = (1, 64)  # (batch, steps) of an inference row
INFER_BATCH_SHAPE = (32, 64)  # (batch, steps) of a batched inference row


def _layer_model(layer, steps, features):
    import keras

    inputs = keras.Input((steps, features))
    model = keras.Model(inputs, layer(inputs))
    model.compile(optimizer="adam", loss="mse")
    return model


def _training_seconds(model, x, y, repeats):
    start = time.perf_counter()
    for _ in range(repeats):
        model.train_on_batch(x, y)
    return (time.perf_counter() - start) / repeats


def _paired_seconds(first, second, calls: int, block: int = 1) -> tuple[float, float]:
    """Mean seconds of a call of `first` and of `second` over `calls` calls of each, made in
    turns of `block` calls (first's, second's, first's, ...), so that both sample the same
    stretch of the host's time while each side's weights stay in the cache for a turn."""
    first_s = second_s = 0.0
    for turn in range(0, calls, block):
        turn_calls = range(min(block, calls - turn))
        start = time.perf_counter()
        for _ in turn_calls:
            first()
        middle = time.perf_counter()
        for _ in turn_calls:
            second()
        first_s += middle - start
        second_s += time.perf_counter() - middle
    return first_s / calls, second_s / calls


def benchmark_layers(rounds: int, repeats: int, units: tuple[int, ...] = LAYER_UNITS,
                     min_seconds: float = 0.5, turn_seconds: float = 0.1) -> None:
    """Ours against the Keras built-in with the same weights, for LSTM, GRU (reset after the
    recurrent product, cuDNN's form and Keras's default) and GRU (reset before it, the
    textbook's), at each width in `units`: training (forward, backward, Adam) at batch 32 and
    inference at batch 1 and 32, each over 64 steps.

    Every row's pair of models is built and traced first, and one call of each is timed: a
    row's measurement is then `repeats` calls of each, or as many more as last `min_seconds`
    on the faster side (a fast row's few calls would be a short sample of the host's noise).
    The two sides take turns of about `turn_seconds` each (`_paired_seconds`), so a slow spell
    of the host longer than a turn or two slows both alike and leaves the ratio as it was,
    while a turn is long enough for its side's weights to stay in the cache (turns of one
    call let each model evict the other's weights at every call); ours goes first in even
    rounds and the built-in in odd ones. Each round sweeps all the rows, so each row's rounds
    are spread over the whole run. A row gives the median of its rounds' ratios and their
    quartiles."""
    import keras
    import numpy as np

    from nlpapps import layers
    from nlpapps.layers import cudnn

    forms = (("LSTM", layers.LSTM, keras.layers.LSTM, {}),
             ("GRU", layers.GRU, keras.layers.GRU, {}),
             ("GRU r-b", layers.GRU, keras.layers.GRU, {"reset_after": False}))
    rows = []  # (label, tokens per call, run ours, run the built-in)
    for name, ours_cls, keras_cls, options in forms:
        for width in units:
            rng = np.random.default_rng(0)
            for mode, (batch, steps) in (("train b32", TRAIN_SHAPE), ("infer b1", INFER_SHAPE),
                                         ("infer b32", INFER_BATCH_SHAPE)):
                x = rng.normal(size=(batch, steps, width)).astype("float32")
                y = rng.normal(size=(batch, steps, width)).astype("float32")
                builtin = _layer_model(keras_cls(width, return_sequences=True, **options),
                                       steps, width)
                ours = _layer_model(ours_cls(width, return_sequences=True, **options),
                                    steps, width)
                ours.set_weights(builtin.get_weights())
                train = mode.startswith("train")

                def call(model, x=x, y=y, train=train):
                    return model.train_on_batch(x, y) if train else model.predict_on_batch(x)

                call_ours = functools.partial(call, ours)
                call_builtin = functools.partial(call, builtin)
                _paired_seconds(call_ours, call_builtin, 1)  # traced outside the timing
                call_seconds = min(_paired_seconds(call_ours, call_builtin, 1))
                block = max(1, round(turn_seconds / call_seconds))
                calls = block * math.ceil(
                    max(repeats, math.ceil(min_seconds / call_seconds)) / block)
                rows.append((f"{name:7} {width:5d} {mode:>9} {calls:5d}", batch * steps,
                             call_ours, call_builtin, calls, block))
    times = [([], []) for _ in rows]  # per row: ours' seconds, the built-in's
    for round_index in range(rounds):
        for (_, _, call_ours, call_builtin, calls, block), (ours_s, keras_s) in zip(rows,
                                                                                  times):
            if round_index % 2 == 0:
                ours_call_s, keras_call_s = _paired_seconds(call_ours, call_builtin, calls,
                                                            block)
            else:
                keras_call_s, ours_call_s = _paired_seconds(call_builtin, call_ours, calls,
                                                            block)
            ours_s.append(ours_call_s)
            keras_s.append(keras_call_s)
        print(f"round {round_index + 1} of {rounds}", file=sys.stderr, flush=True)

    print("GPU: both run cuDNN's fused kernel" if cudnn.gpu_available()
          else "CPU: our step loop against Keras's")
    print(f"{'layer':7} {'units':>5} {'mode':>9} {'calls':>5} {'ours tok/s':>11} "
          f"{'keras tok/s':>11} {'ratio':>6} {'quartiles':>11}")
    for (label, tokens, *_), (ours_s, keras_s) in zip(rows, times):
        ratios = sorted(k / o for o, k in zip(ours_s, keras_s))
        low, high = np.percentile(ratios, [25, 75])
        print(f"{label} {tokens / statistics.median(ours_s):11.0f} "
              f"{tokens / statistics.median(keras_s):11.0f} "
              f"{statistics.median(ratios):6.2f} {low:5.2f}-{high:<5.2f}", flush=True)


def benchmark_generate(rounds: int, tokens: int, model_dir: Path | None = None,
                       litert: bool = False) -> None:
    import tensorflow as tf

    from nlpapps import decoding
    from nlpapps.apps import language_model
    from nlpapps.tokenizer import BOS_ID

    if model_dir:
        model, _, config = language_model.load(model_dir)
    else:
        config = language_model.LanguageModelConfig()
        model = language_model.create_model(config, config.vocab_size)
    sampler = decoding.make_sampler(temperature=1.0, seed=0)

    @tf.function
    def compiled_loop(first, states):
        ids, _, _ = decoding.decode(lambda t, s: (*model.step(t, s), None), first, states,
                                    tokens, sampler=sampler, eos_id=-1)
        return ids

    @tf.function
    def one_step(token_ids, states, step):
        logits, states = model.step(token_ids, states)
        return sampler(logits, step), states

    def python_loop(first, states):
        token_ids = first
        for step in range(tokens):
            token_ids, states = one_step(token_ids, states, tf.constant(step))
        return token_ids

    @tf.function
    def matmul_floor(first, states):
        # Only the weight products of each step (input and recurrent kernels of every layer,
        # the tied readout) in a compiled loop: no gates, no sampling. No loop over this model
        # can be faster, so floor / one-step bounds the speed-up any decoding loop can reach.
        # (An attention block's products are left out: the floor is the recurrent stack's.)
        def body(t, x, hs):
            new_hs = []
            for cell, h in zip(model.cells, hs):
                z = tf.matmul(x, cell.kernel) + tf.matmul(h, cell.recurrent_kernel)
                x = z[:, :cell.units]
                new_hs.append(x)
            if model.projection is not None:
                x = model.projection(x)
            logits = tf.matmul(x, model.embedding.embeddings, transpose_b=True)
            return t + 1, tf.gather(model.embedding.embeddings,
                                    tf.argmax(logits, -1, tf.int32)), new_hs

        x = tf.gather(model.embedding.embeddings, first)
        _, x, _ = tf.while_loop(lambda t, *_: t < tokens, body,
                                (0, x, [h for h, *_ in states[:len(model.cells)]]))
        return x

    def tokens_per_second(run, batch):
        first, states = tf.fill([batch], BOS_ID), model.initial_states(batch)
        start = time.perf_counter()
        run(first, states).numpy()
        return batch * tokens / (time.perf_counter() - start)

    attention = (f", self-attention over {config.attention_memory} tokens"
                 if config.attention else "")
    print(f"{model_dir or 'a fresh model'}: {config.cell} {config.layers}x{config.units}, "
          f"embedding {config.embedding_dim}, vocabulary {config.vocab_size}{attention}, "
          f"{tokens} new tokens per call")
    print(f"{'batch':>5} {'loop tok/s':>11} {'one-step tok/s':>15} {'ratio':>6} "
          f"{'matmul floor tok/s':>19} {'floor ratio':>12}")
    for batch in (1, 32):
        for run in (compiled_loop, python_loop, matmul_floor):  # trace outside the timing
            tokens_per_second(run, batch)
        loop_tps, step_tps, floor_tps = [], [], []
        for _ in range(rounds):
            loop_tps.append(tokens_per_second(compiled_loop, batch))
            step_tps.append(tokens_per_second(python_loop, batch))
            floor_tps.append(tokens_per_second(matmul_floor, batch))
        ratio = statistics.median(o / k for o, k in zip(loop_tps, step_tps))
        floor_ratio = statistics.median(f / k for f, k in zip(floor_tps, step_tps))
        print(f"{batch:5d} {statistics.median(loop_tps):11.0f} "
              f"{statistics.median(step_tps):15.0f} {ratio:6.2f} "
              f"{statistics.median(floor_tps):19.0f} {floor_ratio:12.2f}", flush=True)
    if litert:
        benchmark_litert(model_dir, rounds, tokens, lambda: tokens_per_second(python_loop, 1))


def benchmark_litert(model_dir: Path, rounds: int, tokens: int, one_step_tps) -> None:
    """Batch-1 tokens/s of the model's LiteRT files against `one_step_tps()`, alternately."""
    from nlpapps.serving.litert_language_model import LiteRTLanguageModel
    from nlpapps.export.tflite import export_tflite

    def tokens_per_second(runner):
        start = time.perf_counter()
        _, ids = runner.generate("", tokens, temperature=1.0, seed=0)
        assert len(ids) == tokens, len(ids)
        return tokens / (time.perf_counter() - start)

    print(f"{'LiteRT file (batch 1)':22} {'size MB':>8} {'file tok/s':>11} "
          f"{'one-step tok/s':>15} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as folder:
        for quantize, name in (("none", "float32"), ("dynamic", "dynamic-range")):
            path = export_tflite(model_dir, Path(folder) / f"{quantize}.tflite", quantize)
            runner = LiteRTLanguageModel(path)
            tokens_per_second(runner)
            file_tps, step_tps = [], []
            for _ in range(rounds):
                file_tps.append(tokens_per_second(runner))
                step_tps.append(one_step_tps())
            ratio = statistics.median(f / k for f, k in zip(file_tps, step_tps))
            size = path.stat().st_size / 1e6
            print(f"{name:22} {size:8.2f} {statistics.median(file_tps):11.0f} "
                  f"{statistics.median(step_tps):15.0f} {ratio:6.2f}", flush=True)


def benchmark_generate_command(model_dir: Path, rounds: int, tokens: int,
                               prompt: str = "ROMEO:") -> None:
    """Batch-1 tokens/s of `nlpapps generate`'s default path against the tutorial's OneStep
    loop on the same model, alternately, start-up (imports, loading, tracing) outside the
    timing."""
    import tensorflow as tf

    from nlpapps.apps import language_model
    from nlpapps.serving.generation_config import GenerationConfig
    from nlpapps.commands.language_model_commands import litert_texts
    from nlpapps.serving.litert_language_model import NOT_TEXT, LiteRTLanguageModel
    from nlpapps.runtime import choose
    from nlpapps.tokenizer import BOS_ID

    options = GenerationConfig(max_new_tokens=tokens)  # the command's defaults otherwise
    runtime = choose(model_dir, "auto", [])
    if runtime.name != "litert":
        raise SystemExit(f"{model_dir} has no LiteRT file; write one with `nlpapps export "
                         f"--model {model_dir} --quantize dynamic --in-folder`")
    file_model = LiteRTLanguageModel(runtime.path)
    model, tokenizer, _ = language_model.load(model_dir)
    prompt_ids = language_model.line_start_ids(tokenizer, prompt)
    not_text = tf.constant([[-1e9 if i in NOT_TEXT else 0.0 for i in range(model.vocab_size)]])

    @tf.function
    def one_step(token_ids, states):  # the tutorial's OneStep.generate_one_step, on ids
        logits, states = model.step(token_ids, states)
        logits = logits / options.temperature + not_text
        return tf.random.categorical(logits, 1, dtype=tf.int32)[:, 0], states

    def tutorial_text() -> str:
        states, token = model.initial_states(1), tf.constant([BOS_ID])
        for next_id in prompt_ids:  # the prompt read, one token per call
            _, states = one_step(token, states)
            token = tf.constant([next_id])
        drawn = []
        for _ in range(tokens):
            token, states = one_step(token, states)
            drawn.append(token)
        return prompt + tokenizer.decode(tf.concat(drawn, 0).numpy().tolist())

    def command_text() -> str:
        return litert_texts(file_model, [prompt], options)[0]

    command_s, tutorial_s = alternate_seconds(command_text, tutorial_text, rounds)
    ratio = statistics.median(t / c for c, t in zip(command_s, tutorial_s))
    shown = prompt if len(prompt) <= 30 else f"{prompt[:30]!r}... ({len(prompt_ids)} tokens)"
    print(f"nlpapps generate {shown} --max-new-tokens {tokens}, batch 1, {rounds} rounds; "
          f"default runtime: {runtime.path.name} ({runtime.path.stat().st_size / 1e6:.2f} MB)")
    print(f"{'path':34} {'tok/s':>8} {'ms per call':>12}")
    for name, times in (("nlpapps generate (LiteRT file)", command_s),
                        ("tutorial OneStep loop (TF)", tutorial_s)):
        median = statistics.median(times)
        print(f"{name:34} {tokens / median:8.0f} {1000 * median:12.1f}")
    print(f"ratio (median of rounds): {ratio:.2f}x", flush=True)


def benchmark_train_step(rounds: int, repeats: int) -> None:
    """Training steps per second of the shipped models' networks with the LSTM's and GRU's
    gradient through time written out (`nlpapps.layers.bptt`, what training runs) against
    the same networks with TensorFlow differentiating their step loop (what ran before), from
    the same weights, alternately: the language model's recurrent stage (its recipe's LSTM
    2 x 512 without the attention block, recurrent dropout on) and the translator (a
    bidirectional GRU encoder; its attention decoder's loop is differentiated by TensorFlow
    in both)."""
    import dataclasses
    from unittest import mock

    import keras
    import numpy as np

    from nlpapps import training
    from nlpapps.apps import language_model as lm
    from nlpapps.apps.language_model import LanguageModelConfig
    from nlpapps.apps.translator import TOKENIZER_FILE, Translator, TranslatorConfig
    from nlpapps.layers import bptt
    from nlpapps.tokenizer import Tokenizer

    rng = np.random.default_rng(0)

    def language_model():
        config = dataclasses.replace(LanguageModelConfig.load(DEFAULT_GENERATOR),
                                     attention=False, freeze_recurrent=False)
        ids = rng.integers(3, 4000, size=(config.batch_size, config.seq_len + 1))
        model = lm.create_model(config, 4000)
        return (f"language model: {config.layers} x {config.units} {config.cell}, batch "
                f"{config.batch_size} x {config.seq_len} tokens", config, model,
                ids[:, :-1], ids[:, 1:])

    def translator():
        config = TranslatorConfig.load(DEFAULT_TRANSLATOR)
        tokenizer = Tokenizer.load(DEFAULT_TRANSLATOR / TOKENIZER_FILE)
        model = Translator.create(config, tokenizer).model
        source = rng.integers(3, config.vocab_size, size=(config.batch_size, 24))
        target = rng.integers(3, config.vocab_size, size=(config.batch_size, 25))
        return (f"translator: {config.cell} {config.units}, batch {config.batch_size}, 24 "
                "source and 24 target tokens", config, model, (source, target[:, :-1]),
                target[:, 1:])

    print(f"{'network':70} {'written':>9} {'differentiated':>14} {'ratio':>6} {'quartiles':>11}")
    for make in (language_model, translator):
        name, config, written, x, y = make()
        _, _, differentiated, _, _ = make()
        differentiated.set_weights(written.get_weights())
        for model in (written, differentiated):
            model.compile(optimizer=training.adam(config.learning_rate, config.clipnorm,
                                                  config.decay_steps),
                          loss=training.masked_cross_entropy())
        written.train_on_batch(x, y)  # traced with the written gradient
        with mock.patch.object(bptt, "applies", lambda cell: False):
            differentiated.train_on_batch(x, y)  # traced with the step loop differentiated

        def run(model, x=x, y=y):
            for _ in range(repeats):
                model.train_on_batch(x, y)

        ours, theirs = alternate_seconds(functools.partial(run, written),
                                         functools.partial(run, differentiated), rounds)
        ratios = sorted(t / o for o, t in zip(ours, theirs))
        low, high = np.percentile(ratios, [25, 75])
        print(f"{name:70} {repeats / statistics.median(ours):7.2f}/s "
              f"{repeats / statistics.median(theirs):12.2f}/s {statistics.median(ratios):6.2f} "
              f"{low:5.2f}-{high:<5.2f}", flush=True)
        keras.backend.clear_session()


def benchmark_memory_step(rounds: int, tokens: int, memory: int = 1024, width: int = 768,
                          block: int = 32) -> None:
    """Milliseconds per step, in LiteRT at batch 1, of a loop that reads an attention memory of
    the shipped language model's size at every step (a query, scores over every slot, a softmax,
    the context) and keeps it as the last `memory` states, three ways, each converted alone:

    - shift: the memory is a loop variable rewritten at every step, `concat(m[1:], x)` (what
      the files did before `decoding.decode_in_blocks`);
    - cond: new states go to a small block that is moved into the memory under a `tf.cond`
      every `block` steps (LiteRT's IF still copies the memory it passes through);
    - blocks: the same block, with an inner loop of `block` steps inside an outer loop that
      moves the block into the memory once per `block` steps; the memory is an explicit loop
      variable of both loops, and inside the inner one it is only read (its oldest slots masked
      as the block fills).

    The three compute the same states (the largest difference of the outputs is printed)."""
    import numpy as np
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    m, d, k = memory, width, block
    tokens -= tokens % k
    kernel = tf.constant(np.random.default_rng(0).normal(size=(d, d)).astype("float32") * 0.01)

    def attend(mem, buf, n, x):  # the next state from the memory without its n oldest slots
        q = tf.matmul(x, kernel)
        valid = tf.concat([tf.cast(tf.range(m) >= n, tf.float32),
                           tf.cast(tf.range(k) < n, tf.float32)], 0)[None]
        scores = tf.concat([tf.reduce_sum(mem * q[:, None], -1),
                            tf.reduce_sum(buf * q[:, None], -1)], 1)
        weights = tf.nn.softmax(tf.where(valid > 0, scores, -1e9)) * valid
        context = tf.reduce_sum(weights[:, :m, None] * mem, 1) \
            + tf.reduce_sum(weights[:, m:, None] * buf, 1)
        return tf.tanh(context + x)

    def written(buf, n, x):
        return buf + tf.one_hot(n, k)[None, :, None] * x[:, None]

    spec = [tf.TensorSpec((1, m, d)), tf.TensorSpec((1, d))]

    @tf.function(input_signature=spec)
    def shift(mem, x):
        empty = tf.zeros((1, k, d))

        def body(t, mem, x):
            x = attend(mem, empty, 0, x)
            return t + 1, tf.concat([mem[:, 1:], x[:, None]], 1), x

        return tf.while_loop(lambda t, *_: t < tokens, body, (0, mem, x))[2]

    @tf.function(input_signature=spec)
    def cond(mem, x):
        def body(t, mem, buf, x):
            n = t % k
            x = attend(mem, buf, n, x)
            buf = written(buf, n, x)
            full = tf.equal(n, k - 1)
            mem = tf.cond(full, lambda: tf.concat([mem[:, k:], buf], 1), lambda: mem)
            buf = tf.cond(full, lambda: tf.zeros_like(buf), lambda: buf)
            return t + 1, mem, buf, x

        return tf.while_loop(lambda t, *_: t < tokens, body,
                             (0, mem, tf.zeros((1, k, d)), x))[3]

    @tf.function(input_signature=spec)
    def blocks(mem, x):
        def outer(c, mem, x):
            def inner(n, mem, buf, x):
                x = attend(mem, buf, n, x)
                return n + 1, mem, written(buf, n, x), x

            _, mem, buf, x = tf.while_loop(lambda n, *_: n < k, inner,
                                           (0, mem, tf.zeros((1, k, d)), x))
            return c + 1, tf.concat([mem[:, k:], buf], 1), x

        return tf.while_loop(lambda c, *_: c < tokens // k, outer, (0, mem, x))[2]

    rng = np.random.default_rng(1)
    mem, x = rng.normal(size=(1, m, d)).astype("float32"), np.ones((1, d), "float32")
    runs, outputs = {}, {}
    for name, function in (("shift", shift), ("cond", cond), ("blocks", blocks)):
        converter = tf.lite.TFLiteConverter.from_concrete_functions(
            [function.get_concrete_function()], function)
        interpreter = Interpreter(model_content=converter.convert(), num_threads=2)
        interpreter.allocate_tensors()

        def run(interpreter=interpreter):
            for detail in interpreter.get_input_details():
                interpreter.set_tensor(detail["index"], mem if len(detail["shape"]) == 3 else x)
            interpreter.invoke()
            return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])

        runs[name], outputs[name] = run, run()
    seconds = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    print(f"LiteRT, batch 1, memory {m} x {d}, block {k}, {tokens} steps per call, {rounds} "
          "rounds")
    print(f"{'loop':8} {'ms per step':>12}")
    for name, times in seconds.items():
        print(f"{name:8} {1000 * statistics.median(times) / tokens:12.3f}")
    difference = max(float(np.abs(outputs[name] - outputs["shift"]).max()) for name in runs)
    print(f"largest difference of the outputs: {difference:.2g}", flush=True)


def benchmark_projection(rounds: int, units: tuple[int, ...] = (128, 512)) -> None:
    """Our LSTM's and both GRUs' inference loop (`rnn.recurrence`) with `project_inputs` run
    once before it against each step projecting its own input, the same weights and inputs,
    at widths `units` and batches 1 to 64; their outputs are checked equal first."""
    import numpy as np
    import tensorflow as tf

    from nlpapps import layers
    from nlpapps.layers.rnn import loop_step, projecting_step, recurrence

    steps = 64
    print(f"{'cell':7} {'units':>5} {'batch':>5} {'before ms':>10} {'inside ms':>10} "
          f"{'before/inside':>14}")
    for width in units:
        for name, options in (("LSTM", {}), ("GRU", {}), ("GRU r-b", {"reset_after": False})):
            layer = getattr(layers, name.split()[0])(width, return_sequences=True, **options)
            layer.build((None, steps, width))
            cell = layer.cell
            for batch in (1, 2, 4, 8, 16, 32, 64):
                x = tf.constant(np.random.default_rng(0).normal(
                    size=(steps, batch, width)).astype("float32"))  # time-major
                states = cell.get_initial_state(batch)

                @tf.function
                def before(x, cell=cell, states=states):
                    return recurrence(loop_step(cell), cell.project_inputs(x),
                                      states, return_sequences=True)[1]

                @tf.function
                def inside(x, cell=cell, states=states):
                    return recurrence(projecting_step(cell), x, states,
                                      return_sequences=True)[1]

                np.testing.assert_allclose(before(x), inside(x), atol=1e-5)
                calls = max(3, 64 // batch)

                def run(loop, x=x, calls=calls):
                    for _ in range(calls):
                        loop(x)

                first, second = alternate_seconds(functools.partial(run, before),
                                                  functools.partial(run, inside), rounds)
                ratio = statistics.median(a / b for a, b in zip(first, second))
                print(f"{name:7} {width:5d} {batch:5d} "
                      f"{1000 * statistics.median(first) / calls:10.2f} "
                      f"{1000 * statistics.median(second) / calls:10.2f} {ratio:14.2f}",
                      flush=True)


def benchmark_sums(rounds: int, units: tuple[int, ...] = (128, 256, 512)) -> None:
    """A training step of our LSTM's and both GRUs' layers with the recurrent kernel's
    gradient added up in the backward loop against after it (`bptt.sums_in_loop`, chosen
    when each model is traced), the same weights and data; the losses after one update are
    checked equal."""
    import numpy as np

    from nlpapps import layers
    from nlpapps.layers import bptt

    batch, steps = TRAIN_SHAPE
    print(f"{'layer':7} {'units':>5} {'in loop ms':>11} {'after ms':>9} {'after/in loop':>14}")
    limit = bptt.SUMS_IN_LOOP_MAX_KERNEL
    try:
        for width in units:
            rng = np.random.default_rng(0)
            x = rng.normal(size=(batch, steps, width)).astype("float32")
            y = rng.normal(size=(batch, steps, width)).astype("float32")
            for name, options in (("LSTM", {}), ("GRU", {}), ("GRU r-b", {"reset_after": False})):
                models = [_layer_model(getattr(layers, name.split()[0])(
                    width, return_sequences=True, **options), steps, width) for _ in "ab"]
                models[1].set_weights(models[0].get_weights())
                losses = []
                for in_loop, model in zip((True, False), models):
                    bptt.SUMS_IN_LOOP_MAX_KERNEL = math.inf if in_loop else 0
                    model.train_on_batch(x, y)  # traced now, with the limit just set
                    losses.append(float(model.train_on_batch(x, y)))  # after one update
                np.testing.assert_allclose(losses[0], losses[1], rtol=1e-4)
                calls = max(3, math.ceil(0.5 / _training_seconds(models[0], x, y, 1)))
                first, second = alternate_seconds(
                    *(functools.partial(_training_seconds, model, x, y, calls)
                      for model in models), rounds)
                ratio = statistics.median(a / b for a, b in zip(second, first))
                # `_training_seconds` gives the seconds of one step, `calls` steps timed.
                print(f"{name:7} {width:5d} {1000 * statistics.median(first) / calls:11.2f} "
                      f"{1000 * statistics.median(second) / calls:9.2f} {ratio:14.2f}",
                      flush=True)
    finally:
        bptt.SUMS_IN_LOOP_MAX_KERNEL = limit


def benchmark_saved_translators(old: Path, new: Path, rounds: int, batch: int) -> None:
    """The batched `translate` signature of two SavedModels of a translator: the same best
    translations of the fixture's sentences, and their speed at `batch` sentences a call."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the tokenizer's ops, which the SavedModels call)

    modules = {name: tf.saved_model.load(str(folder)) for name, folder in
               (("old", old), ("new", new))}
    text = (ROOT / "tests" / "fixtures" / "pairs.en-de.tsv").read_text(encoding="utf-8")
    sentences = [line.split("\t")[0] for line in text.splitlines() if line.strip()]

    def translate(name, rows, beam):
        return modules[name].translate(inputs=tf.constant(rows), beam_size=tf.constant(beam),
                                       alpha=tf.constant(0.6))["outputs"].numpy()[:, 0]

    print(f"{old} (old) against {new} (new), {len(sentences)} sentences, {rounds} rounds")
    print(f"{'decoding':8} {'same':>9} {'old sent/s':>11} {'new sent/s':>11} {'new/old':>8}")
    for name, beam in (("greedy", 1), ("beam 5", 5)):
        same = sum(int(a == b) for start in range(0, len(sentences), batch)
                   for a, b in zip(translate("old", sentences[start:start + batch], beam),
                                   translate("new", sentences[start:start + batch], beam)))
        rows = sentences[:batch]
        old_s, new_s = alternate_seconds(functools.partial(translate, "old", rows, beam),
                                         functools.partial(translate, "new", rows, beam),
                                         rounds)
        ratio = statistics.median(o / n for o, n in zip(old_s, new_s))
        print(f"{name:8} {same:4d}/{len(sentences):<4d} "
              f"{len(rows) / statistics.median(old_s):11.1f} "
              f"{len(rows) / statistics.median(new_s):11.1f} {ratio:8.2f}", flush=True)


def alternate_seconds(first, second, rounds: int) -> tuple[list[float], list[float]]:
    """Seconds of each of `rounds` calls of `first` and of `second`, alternately, after one
    untimed call of each (tracing and warming up outside the timing)."""
    def seconds(run) -> float:
        start = time.perf_counter()
        run()
        return time.perf_counter() - start

    seconds(first), seconds(second)
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        times[0].append(seconds(first))
        times[1].append(seconds(second))
    return times


def keras_builtin_translator(model):
    """The TensorFlow NMT tutorial's encoder-decoder built from Keras's built-in layers
    (`Embedding`, `Bidirectional(GRU)`, `Dense`, `AdditiveAttention`, `GRUCell`) in the
    shape of our translator `model` (one bidirectional GRU layer, one GRU decoder cell,
    Bahdanau attention from the previous state, the output tied to the embedding), holding
    `model`'s weights: `(encode, step)` compiled functions, the tutorial's way of decoding one
    token per Python call."""
    import keras
    import tensorflow as tf

    if (model.cell, model.encoder_layers, model.decoder_layers, model.attention_type) != \
            ("gru", 1, 1, "bahdanau"):
        raise SystemExit("the built-in counterpart is written for one GRU layer on each side "
                         "with Bahdanau attention (the shipped translator)")
    units, vocab = model.units, model.vocab_size
    embedding = keras.layers.Embedding(vocab, model.embedding_dim)
    encoder = keras.layers.Bidirectional(keras.layers.GRU(units // 2, return_sequences=True))
    bridge = keras.layers.Dense(units, activation="tanh")
    query = keras.layers.Dense(model.attention.units, use_bias=False)
    key = keras.layers.Dense(model.attention.units, use_bias=False)
    attention = keras.layers.AdditiveAttention(use_scale=True)
    cell = keras.layers.GRUCell(units)
    readout = keras.layers.Dense(model.embedding_dim, activation="tanh")
    source = tf.zeros([1, 3], tf.int32)
    embedding(source)
    encoder(tf.zeros([1, 3, model.embedding_dim]))
    bridge.build((None, units))
    query.build((None, units))
    key.build((None, None, units))
    attention([tf.zeros([1, 1, model.attention.units]), tf.zeros([1, 3, units]),
               tf.zeros([1, 3, model.attention.units])])
    cell.build((None, model.embedding_dim + units))
    readout.build((None, 2 * units))
    encoder_layer = model.encoder.layers[0]
    forward, backward = encoder_layer.forward_layer, encoder_layer.backward_layer
    decoder = model.decoder_cells[0]
    embedding.set_weights([model.embedding.embeddings.numpy()])
    encoder.set_weights([w.numpy() for layer in (forward, backward) for w in layer.weights])
    bridge.set_weights(model.bridge.get_weights())
    query.set_weights([model.attention.query_kernel.numpy()])
    key.set_weights([model.attention.key_kernel.numpy()])
    attention.set_weights([model.attention.score_kernel.numpy()])
    cell.set_weights([np.concatenate([decoder.kernel.numpy(),
                                      model.context_projection.kernel.numpy()]),
                      decoder.recurrent_kernel.numpy(), decoder.bias.numpy()])
    readout.set_weights(model.readout.get_weights())
    output_kernel = tf.transpose(embedding.embeddings)
    output_bias = model.output_bias

    @tf.function(reduce_retracing=True)
    def encode(source_ids):
        mask = tf.not_equal(source_ids, 0)
        values = encoder(embedding(source_ids), mask=mask)
        weights = tf.cast(mask, values.dtype)[..., None]
        mean = tf.reduce_sum(values * weights, 1) / tf.maximum(tf.reduce_sum(weights, 1), 1.0)
        return values, key(values), mask, bridge(mean)

    @tf.function(reduce_retracing=True)
    def step(tokens, state, values, keys, mask):
        context = attention([query(state)[:, None], values, keys], mask=[None, mask])[:, 0]
        output, [state] = cell(tf.concat([embedding(tokens), context], -1), [state])
        logits = tf.matmul(readout(tf.concat([output, context], -1)), output_kernel)
        return logits + output_bias, state

    return encode, step


def benchmark_translate(model_dir: Path, text: Path, batch: int, beam: int,
                        rounds: int) -> None:
    """Sentences/s of our translator at `batch` sentences per call, greedy and beam, against
    the same network built from Keras's built-in layers decoded one token per Python call
    (`keras_builtin_translator`), measured alternately."""
    import numpy as np
    import tensorflow as tf

    from nlpapps import decoding, folder_weights
    from nlpapps.apps.translator import Translator, TranslatorConfig
    from nlpapps.models.seq2seq import output_length_limit
    from nlpapps.tokenizer import BOS_ID, EOS_ID, Tokenizer

    translator = Translator.create(TranslatorConfig.load(model_dir),
                                   Tokenizer.load(model_dir / "tokenizer.model"))
    folder_weights.load_weights(translator.model, model_dir)
    model = translator.model
    lines = [line.split("\t")[0] for line in text.read_text(encoding="utf-8").splitlines()
             if line.strip()][:batch]
    if len(lines) < batch:
        raise SystemExit(f"{text} has {len(lines)} lines, fewer than --batch {batch}")
    source_ids = tf.constant(translator.encode_sources(lines))
    limits = output_length_limit(source_ids)

    @tf.function
    def our_beam(source_ids):
        memory, states = model.encode(source_ids)
        memory, states = decoding.tile_beams(memory, beam), decoding.tile_beams(states, beam)
        memory = model.with_output_kernel(memory)  # as the SavedModel's `translate` does
        ids, _, _ = decoding.beam_search(
            lambda tokens, s: model.decode_step(tokens, s, memory),
            tf.fill([tf.shape(source_ids)[0]], BOS_ID), states, beam, limits, alpha=1.0,
            min_length=decoding.MIN_DECODING_LENGTH)
        return ids

    encode, step = keras_builtin_translator(model)
    eos_column = tf.one_hot([EOS_ID], model.vocab_size) * -1e9

    def builtin_greedy():
        values, keys, mask, state = encode(source_ids)
        tokens, ids = tf.fill([batch], BOS_ID), []
        done = np.zeros(batch, bool)
        for t in range(int(tf.reduce_max(limits))):
            logits, state = step(tokens, state, values, keys, mask)
            if t < decoding.MIN_DECODING_LENGTH:
                logits += eos_column
            tokens = tf.argmax(logits, -1, output_type=tf.int32)
            ids.append(tokens.numpy())
            done |= (ids[-1] == EOS_ID) | (t + 1 >= limits.numpy())
            if done.all():
                break
        return np.stack(ids, 1)

    steps_of_our_beam = int(our_beam(source_ids).shape[-1])

    @tf.function(reduce_retracing=True)
    def beam_step(tokens, state, scores, values, keys, mask):
        logits, state = step(tokens, state, values, keys, mask)
        total = scores[..., None] + tf.reshape(tf.nn.log_softmax(logits),
                                               [batch, beam, model.vocab_size])
        scores, index = tf.math.top_k(tf.reshape(total, [batch, -1]), beam)
        rows = tf.reshape(tf.range(batch)[:, None] * beam + index // model.vocab_size, [-1])
        return tf.reshape(index % model.vocab_size, [-1]), tf.gather(state, rows), scores

    def builtin_beam():  # as many steps as our search took, no bookkeeping of finished ones
        values, keys, mask, state = encode(source_ids)
        values, keys, mask, state = (tf.repeat(x, beam, axis=0)
                                     for x in (values, keys, mask, state))
        scores = tf.tile(tf.constant([[0.0] + [-1e9] * (beam - 1)]), [batch, 1])
        tokens = tf.fill([batch * beam], BOS_ID)
        for _ in range(steps_of_our_beam):
            tokens, state, scores = beam_step(tokens, state, scores, values, keys, mask)
        return tokens

    ours_ids = translator._greedy(source_ids)[0].numpy()
    builtin_ids = builtin_greedy()
    same = sum(np.array_equal(a[:len(b)], b) or np.array_equal(a, b[:len(a)])
               for a, b in zip(_until_eos(ours_ids), _until_eos(builtin_ids)))
    print(f"{model_dir}: batch {batch}, beam {beam}, {rounds} rounds; the built-in network "
          f"holds the same weights: {same} of {batch} greedy translations identical")
    print(f"{'decoding':8} {'ours sent/s':>12} {'built-in sent/s':>16} {'ratio':>6}")
    for name, ours, builtin in (
            ("greedy", lambda: translator._greedy(source_ids)[0].numpy(), builtin_greedy),
            (f"beam {beam}", lambda: our_beam(source_ids).numpy(), builtin_beam)):
        ours_s, builtin_s = alternate_seconds(ours, builtin, rounds)
        ratio = statistics.median(b / o for o, b in zip(ours_s, builtin_s))
        print(f"{name:8} {batch / statistics.median(ours_s):12.1f} "
              f"{batch / statistics.median(builtin_s):16.1f} {ratio:6.2f}", flush=True)


def _until_eos(ids):
    from nlpapps.tokenizer import EOS_ID

    rows = []
    for row in ids.tolist():
        rows.append(row[:row.index(EOS_ID) + 1] if EOS_ID in row else row)
    return [np.asarray(row) for row in rows]


ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TRANSLATOR = ROOT / "saved_models" / "translator-en-de"
DEFAULT_GENERATOR = ROOT / "saved_models" / "shakespeare"
STARTUP_COMMANDS = {"translate": ["translate", "Hello."], "generate": ["generate", "ROMEO:"]}
IMPORTS = {"python alone": "pass", "import nlpapps.cli": "import nlpapps.cli",
           "import ai_edge_litert": "from ai_edge_litert.interpreter import Interpreter",
           "import tensorflow": "import tensorflow",
           "import tensorflow_text": "import tensorflow_text"}


def first_output_seconds(argv: list[str], package: Path | None = None) -> float:
    """Seconds from starting `python -m nlpapps.cli *argv` to its first byte on stdout; with
    `package`, the nlpapps package in that folder instead of the installed one."""
    env = dict(os.environ, PYTHONPATH=str(package)) if package else None
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "nlpapps.cli", *argv], env=env,
                               cwd=tempfile.gettempdir(), stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL)
    first = process.stdout.read(1)
    elapsed = time.perf_counter() - start
    process.stdout.read()
    if process.wait() != 0 or not first:
        raise SystemExit(f"nlpapps {' '.join(argv)} failed")
    return elapsed


def import_seconds(statement: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def benchmark_kept_tensors(rounds: int) -> None:
    """Milliseconds per call of the shipped LiteRT files opened as plain interpreters and with
    every tensor kept, alternately (see the module's docstring)."""
    import numpy as np

    from nlpapps.serving.litert_interpreter import open_interpreter
    from nlpapps.serving.litert_language_model import sampling_inputs

    sentences = [line.split("\t")[0].encode() for line in
                 (ROOT / "tests" / "fixtures" / "pairs.en-de.tsv").read_text().splitlines()[:5]]
    prompt = np.array([b"ROMEO:"], dtype=object)
    jobs = {  # name: (file, signature, [inputs of each call])
        "language model, greedy, 500 tokens": (
            DEFAULT_GENERATOR, "serving_default", [sampling_inputs(500, 0.0)]),
        "language model, temperature 0.8, 500 tokens": (
            DEFAULT_GENERATOR, "serving_default", [sampling_inputs(500, 0.8)]),
        "language model, top-k 40, top-p 0.9, 300 tokens": (
            DEFAULT_GENERATOR, "serving_default", [sampling_inputs(300, 0.8, 40, 0.9)]),
        "translator, greedy, 5 sentences": (DEFAULT_TRANSLATOR, "serving_default", [
            {"inputs": np.array([s], dtype=object)} for s in sentences]),
        "translator, beam 5, 5 sentences": (DEFAULT_TRANSLATOR, "beam", [
            {"inputs": np.array([s], dtype=object), "alpha": np.array(1.0, np.float32)}
            for s in sentences]),
    }
    print(f"LiteRT, batch 1, {rounds} rounds")
    print(f"{'call':48} {'plain ms':>9} {'kept ms':>8} {'ratio':>6} {'same output':>12}")
    for name, (folder, signature, calls) in jobs.items():
        if "language model" in name:
            calls = [dict(call, inputs=prompt) for call in calls]
        runners = [open_interpreter(folder / "model.dynamic.tflite", preserve_tensors=kept)
                   .get_signature_runner(signature) for kept in (False, True)]
        outputs = [[runner(**call) for call in calls] for runner in runners]
        same = all(a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
                   for a, b in zip(*outputs))
        plain_s, kept_s = alternate_seconds(*(
            functools.partial(lambda r, calls: [r(**call) for call in calls], runner, calls)
            for runner in runners), rounds)
        ratio = statistics.median(p / k for p, k in zip(plain_s, kept_s))
        print(f"{name:48} {1000 * statistics.median(plain_s):9.1f} "
              f"{1000 * statistics.median(kept_s):8.1f} {ratio:6.2f} {str(same):>12}",
              flush=True)
    print(f"{'peak memory of a process making one call':48} {'plain MB':>9} {'kept MB':>8}")
    for name, call in KEPT_TENSORS_MEMORY.items():
        print(f"{name:48} " + " ".join(
            f"{peak_memory_mb(KEPT_TENSORS_PROCESS.format(kept=kept, call=call)):{width}.0f}"
            for kept, width in ((False, 9), (True, 8))), flush=True)


# A process of `benchmark_kept_tensors`'s memory table: one file opened, one call.
KEPT_TENSORS_PROCESS = """
import numpy as np
from nlpapps.commands.common import DEFAULT_GENERATOR, DEFAULT_TRANSLATOR
from nlpapps.serving.litert_interpreter import open_interpreter
from nlpapps.serving.litert_language_model import sampling_inputs, total_log_prob
def runner(folder, signature):
    return open_interpreter(folder / "model.dynamic.tflite",
                            preserve_tensors={kept}).get_signature_runner(signature)
{call}
"""
KEPT_TENSORS_MEMORY = {
    "language model, temperature 0.8, 500 tokens":
        'runner(DEFAULT_GENERATOR, "serving_default")(inputs=np.array([b"ROMEO:"], '
        'dtype=object), **sampling_inputs(500, 0.8))',
    "language model, score 3,000 tokens":
        "from nlpapps.tokenizer import Tokenizer\n"
        'ids = Tokenizer.load(DEFAULT_GENERATOR / "tokenizer.model").encode(open('
        f'"{ROOT / "tests" / "fixtures" / "shakespeare" / "test.txt"}").read())[:3000]\n'
        'score = runner(DEFAULT_GENERATOR, "score")\n'
        'total_log_prob(score, ids, score.get_input_details()["states"]["shape"][1])',
    "translator, beam 5, 1 sentence":
        'runner(DEFAULT_TRANSLATOR, "beam")(inputs=np.array([b"Where is the station?"], '
        'dtype=object), alpha=np.array(1.0, np.float32))',
}


def peak_memory_mb(code: str) -> float:
    """Peak resident memory (`VmHWM`), in MB, of a Python process running `code`."""
    code += '\nprint(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])'
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"the measured process failed:\n{done.stderr[-2000:]}")
    return int(done.stdout.split()[-1]) / 1024


def benchmark_startup(rounds: int, before: Path | None = None) -> None:
    """Time to first output of the two commands in each runtime, and of the imports alone;
    with `before` (a folder holding an earlier nlpapps package, e.g. `git archive <commit>
    nlpapps | tar -x -C DIR`), also that package's commands run on the same LiteRT files
    (`--model FOLDER/model.dynamic.tflite`) and on the folders."""
    runs = {f"nlpapps {' '.join(argv)} --runtime {runtime}": ([*argv, "--runtime", runtime], None)
            for argv in STARTUP_COMMANDS.values() for runtime in ("auto", "tf")}
    if before:
        for argv, folder in zip(STARTUP_COMMANDS.values(), (DEFAULT_TRANSLATOR, DEFAULT_GENERATOR)):
            file = folder / "model.dynamic.tflite"
            runs[f"before: nlpapps {' '.join(argv)} --model {file.relative_to(ROOT)}"] = (
                [*argv, "--model", str(file)], before)
            runs[f"before: nlpapps {' '.join(argv)}"] = ([*argv, "--model", str(folder)], before)
    times: dict[str, list[float]] = {name: [] for name in (*runs, *IMPORTS)}
    for _ in range(rounds):
        for name, (argv, package) in runs.items():
            times[name].append(first_output_seconds(argv, package))
        for name, statement in IMPORTS.items():
            times[name].append(import_seconds(statement))
    width = max(map(len, times))
    print(f"{'seconds to first output, ' + str(rounds) + ' rounds':{width}} {'median':>7} "
          f"{'min':>6} {'max':>6}")
    for name, values in times.items():
        print(f"{name:{width}} {statistics.median(values):7.2f} {min(values):6.2f} "
              f"{max(values):6.2f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    layers_parser = sub.add_parser("layers", help="our LSTM/GRU vs the Keras built-ins")
    layers_parser.add_argument("--rounds", type=int, default=5)
    layers_parser.add_argument("--steps", type=int, default=10,
                               help="the fewest calls (training steps or predictions) per "
                                    "measurement")
    layers_parser.add_argument("--units", type=int, nargs="+", default=list(LAYER_UNITS),
                               help="the layer widths to run")
    layers_parser.add_argument("--min-seconds", type=float, default=0.5,
                               help="the least time a round's measurement of a row lasts: "
                                    "fast rows make more calls than --steps")
    generate_parser = sub.add_parser("generate", help="compiled generation loop vs one step "
                                                      "per Python call")
    generate_parser.add_argument("--rounds", type=int, default=5)
    generate_parser.add_argument("--tokens", type=int, default=100, help="new tokens per call")
    generate_parser.add_argument("--model", type=Path, action="append",
                                 help="a language-model folder (default: a randomly "
                                      "initialized model of the default size); repeatable")
    generate_parser.add_argument("--litert", action="store_true",
                                 help="also time the model's TFLite files in LiteRT "
                                      "(needs --model)")
    command_parser = sub.add_parser("generate-command", help="`nlpapps generate`'s default "
                                    "path vs the tutorial's OneStep loop, batch 1")
    command_parser.add_argument("--rounds", type=int, default=5)
    command_parser.add_argument("--tokens", type=int, default=500, help="new tokens per call")
    command_parser.add_argument("--model", type=Path, default=DEFAULT_GENERATOR,
                                help="a language-model folder with its LiteRT file")
    command_parser.add_argument("--prompt", default="ROMEO:",
                                help="the prompt (a long one starts with a fuller memory)")
    translate_parser = sub.add_parser("translate", help="our translator vs the same network "
                                      "of Keras built-in layers, sentences/s")
    translate_parser.add_argument("--model", type=Path, default=DEFAULT_TRANSLATOR)
    translate_parser.add_argument("--text", type=Path, default=ROOT / "tests" / "fixtures" /
                                  "pairs.en-de.tsv", help="English sentences, one per line "
                                  "(a TSV's first column)")
    translate_parser.add_argument("--batch", type=int, default=64)
    translate_parser.add_argument("--beam", type=int, default=5)
    translate_parser.add_argument("--rounds", type=int, default=5)
    train_parser = sub.add_parser("train-step", help="the shipped networks' training steps, "
                                  "gradient through time written out vs differentiated")
    train_parser.add_argument("--rounds", type=int, default=5)
    train_parser.add_argument("--steps", type=int, default=3, help="training steps per round")
    memory_parser = sub.add_parser("memory-step", help="an attention memory's step in LiteRT: "
                                   "rewritten each step, under a cond, or in blocks")
    memory_parser.add_argument("--rounds", type=int, default=7)
    memory_parser.add_argument("--tokens", type=int, default=128, help="steps per call")
    projection_parser = sub.add_parser("projection", help="inputs projected before the "
                                       "inference loop or inside it, by batch")
    projection_parser.add_argument("--rounds", type=int, default=15)
    projection_parser.add_argument("--units", type=int, nargs="+", default=[128, 512],
                                   help="the layer widths to run")
    sums_parser = sub.add_parser("sums", help="training with the recurrent kernel's gradient "
                                 "added up in the backward loop or after it")
    sums_parser.add_argument("--rounds", type=int, default=9)
    sums_parser.add_argument("--units", type=int, nargs="+", default=[128, 256, 512],
                             help="the layer widths to run")
    saved_parser = sub.add_parser("saved-translators", help="two SavedModels of a "
                                  "translator: same translations, and their speed")
    saved_parser.add_argument("old", type=Path)
    saved_parser.add_argument("new", type=Path)
    saved_parser.add_argument("--rounds", type=int, default=9)
    saved_parser.add_argument("--batch", type=int, default=64)
    kept_parser = sub.add_parser("kept-tensors", help="the shipped LiteRT files as plain "
                                 "interpreters and with every tensor kept")
    kept_parser.add_argument("--rounds", type=int, default=11)
    startup_parser = sub.add_parser("startup", help="seconds to the first output of "
                                    "`nlpapps translate` and `nlpapps generate`")
    startup_parser.add_argument("--rounds", type=int, default=3)
    startup_parser.add_argument("--before", type=Path, metavar="DIR",
                                help="also time the commands of the nlpapps package in DIR")
    args = parser.parse_args(argv)
    if args.what == "generate" and args.litert and not args.model:
        parser.error("--litert needs --model")
    if args.what == "layers":
        benchmark_layers(args.rounds, args.steps, tuple(args.units), args.min_seconds)
    elif args.what == "generate":
        for model_dir in args.model or [None]:
            benchmark_generate(args.rounds, args.tokens, model_dir, args.litert)
    elif args.what == "generate-command":
        benchmark_generate_command(args.model, args.rounds, args.tokens, args.prompt)
    elif args.what == "translate":
        benchmark_translate(args.model, args.text, args.batch, args.beam, args.rounds)
    elif args.what == "train-step":
        benchmark_train_step(args.rounds, args.steps)
    elif args.what == "memory-step":
        benchmark_memory_step(args.rounds, args.tokens)
    elif args.what == "projection":
        benchmark_projection(args.rounds, tuple(args.units))
    elif args.what == "sums":
        benchmark_sums(args.rounds, tuple(args.units))
    elif args.what == "saved-translators":
        benchmark_saved_translators(args.old, args.new, args.rounds, args.batch)
    elif args.what == "kept-tensors":
        benchmark_kept_tensors(args.rounds)
    elif args.what == "startup":
        benchmark_startup(args.rounds, args.before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
