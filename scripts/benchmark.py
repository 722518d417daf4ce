"""Benchmarks that compare ratios measured inside one run.

    python scripts/benchmark.py layers [--rounds 5] [--steps 10]
    python scripts/benchmark.py generate [--rounds 5] [--tokens 100] [--model DIR [--litert]]

`layers`: training tokens/s (forward + backward + Adam update) of nlpapps's LSTM and GRU against
`keras.layers.LSTM` / `keras.layers.GRU` with the same weights, measured alternately (ours,
built-in, ours, ...) so that machine noise hits both alike; prints the median ratio.

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
same one-step loop.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

LAYER_SHAPES = ((32, 64, 256, 512), (64, 100, 128, 256))  # (batch, steps, input, units)


def _training_model(layer, steps, features):
    import keras

    inputs = keras.Input((steps, features))
    model = keras.Model(inputs, layer(inputs))
    model.compile(optimizer="adam", loss="mse")
    return model


def _tokens_per_second(model, x, y, repeats):
    model.train_on_batch(x, y)  # compile outside the timing
    start = time.perf_counter()
    for _ in range(repeats):
        model.train_on_batch(x, y)
    return x.shape[0] * x.shape[1] * repeats / (time.perf_counter() - start)


def benchmark_layers(rounds: int, repeats: int) -> None:
    import keras
    import numpy as np

    from nlpapps import layers
    from nlpapps.layers import cudnn

    pairs = (("LSTM", layers.LSTM, keras.layers.LSTM), ("GRU", layers.GRU, keras.layers.GRU))
    print("GPU: both run cuDNN's fused kernel" if cudnn.gpu_available()
          else "CPU: our step loop against Keras's")
    print(f"{'layer':5} {'batch':>5} {'steps':>5} {'input':>5} {'units':>5} "
          f"{'ours tok/s':>11} {'keras tok/s':>11} {'ratio':>6}")
    for name, ours_cls, keras_cls in pairs:
        for batch, steps, features, units in LAYER_SHAPES:
            rng = np.random.default_rng(0)
            x = rng.normal(size=(batch, steps, features)).astype("float32")
            y = rng.normal(size=(batch, steps, units)).astype("float32")
            builtin = _training_model(keras_cls(units, return_sequences=True), steps, features)
            ours = _training_model(ours_cls(units, return_sequences=True), steps, features)
            ours.set_weights(builtin.get_weights())
            ours_tps, keras_tps = [], []
            for _ in range(rounds):
                ours_tps.append(_tokens_per_second(ours, x, y, repeats))
                keras_tps.append(_tokens_per_second(builtin, x, y, repeats))
            ratio = statistics.median(o / k for o, k in zip(ours_tps, keras_tps))
            print(f"{name:5} {batch:5d} {steps:5d} {features:5d} {units:5d} "
                  f"{statistics.median(ours_tps):11.0f} {statistics.median(keras_tps):11.0f} "
                  f"{ratio:6.2f}", flush=True)


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
                                (0, x, [h for h, *_ in states]))
        return x

    def tokens_per_second(run, batch):
        first, states = tf.fill([batch], BOS_ID), model.initial_states(batch)
        start = time.perf_counter()
        run(first, states).numpy()
        return batch * tokens / (time.perf_counter() - start)

    print(f"{config.cell} {config.layers}x{config.units}, embedding {config.embedding_dim}, "
          f"vocabulary {config.vocab_size}, {tokens} new tokens per call")
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
    from nlpapps.export.litert_language_model import LiteRTLanguageModel
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    layers_parser = sub.add_parser("layers", help="our LSTM/GRU vs the Keras built-ins")
    layers_parser.add_argument("--rounds", type=int, default=5)
    layers_parser.add_argument("--steps", type=int, default=10, help="training steps per round")
    generate_parser = sub.add_parser("generate", help="compiled generation loop vs one step "
                                                      "per Python call")
    generate_parser.add_argument("--rounds", type=int, default=5)
    generate_parser.add_argument("--tokens", type=int, default=100, help="new tokens per call")
    generate_parser.add_argument("--model", type=Path, help="a language-model folder "
                                 "(default: a randomly initialized model of the default size)")
    generate_parser.add_argument("--litert", action="store_true",
                                 help="also time the model's TFLite files in LiteRT "
                                      "(needs --model)")
    args = parser.parse_args(argv)
    if args.what == "generate" and args.litert and not args.model:
        parser.error("--litert needs --model")
    if args.what == "layers":
        benchmark_layers(args.rounds, args.steps)
    elif args.what == "generate":
        benchmark_generate(args.rounds, args.tokens, args.model, args.litert)
    return 0


if __name__ == "__main__":
    sys.exit(main())
