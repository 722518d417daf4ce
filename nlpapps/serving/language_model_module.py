"""`LanguageModelModule`: a language model's text generation and scoring behind string
signatures, which the SavedModel serves, TFLite converts and `TextGenerator` drives.

The SavedModel holds the tokenizer, the weights and the generation loops, so it runs with
`tensorflow` and `tensorflow_text` alone:

    import tensorflow as tf, tensorflow_text  # registers the tokenizer ops
    model = tf.saved_model.load("saved_models/shakespeare")
    model.signatures["serving_default"](inputs=tf.constant(["ROMEO:\\n"]))
    model.generate(inputs=tf.constant(["ROMEO:\\n"]), max_new_tokens=100, temperature=0.8,
                   top_k=0, top_p=0.95, seed=7)

A prompt is read as the start of a line (see `nlpapps.apps.language_model`), and only its last
`context_tokens` tokens are read. Generated text never holds pad, unk, bos or eos: the model
writes text, and nothing ends it but `max_new_tokens`. `nlpapps.export.language_model_folder`
writes the SavedModel of a trained language model.
"""

from __future__ import annotations

import math

import tensorflow as tf

from nlpapps import decoding
from nlpapps.decoding_limits import MAX_NEW_TOKENS_ONE
from nlpapps.graph_tokenizer import GraphTokenizer
from nlpapps.serving.generation_config import GenerationConfig
from nlpapps.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Tokenizer

NO_EOS = -1  # the decoding loops' eos id for text that nothing ends
ATTENTION_BLOCK = 64  # steps between two writes of an attention memory in `generate_one`
MEMORY_GRANULE = 64  # the granule of the part of the memory read (see `filled_part`)
_SCALAR_INT, _SCALAR_FLOAT = tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.float32)


class LanguageModelModule(tf.Module):
    """A language model as a `tf.Module` with string signatures.

    Signatures (`S` is the width of all the model's states together):

        serving_default(inputs: string[batch]) -> {outputs: string[batch],
            ids: int32[batch, steps], scores: float[batch]}
            the continuation of each prompt, sampled with `defaults`; scores are the
            log-probabilities of the generated tokens.

    and, also as signatures:

        generate(inputs, max_new_tokens: int32, temperature: float32, top_k: int32,
                 top_p: float32, seed: int32) -> as serving_default
            temperature 0 is greedy, top_k 0 and top_p 1 turn those filters off.
        beam_search(inputs, max_new_tokens: int32, beam_size: int32) -> as serving_default
            the best of `beam_size` hypotheses, beam_size in [1, decoding.MAX_BEAM].
        prefill(inputs) -> {tokens: int32[batch], states: float[batch, S],
                            context_ids: int32[batch, n], context_lengths: int32[batch]}
        extend(tokens, states, max_new_tokens, start_step: int32, temperature, top_k, top_p,
               seed) -> {ids: int32[batch, steps], scores: float[batch], states}
            generation in pieces: `prefill` reads the prompts, each `extend` goes on from the
            last token and states of the one before with `start_step` = the tokens drawn so
            far. The pieces together are what `generate` draws in one call.

    At batch 1, with static shapes but the lengths, for LiteRT (`nlpapps.export.tflite`):

        generate_one(inputs: string[1], max_new_tokens: int32, temperature: float32,
                     top_k: int32, top_p: float32, seed: int32) ->
                     {text: string[1], ids: int32[1, steps], prompt: string[1]}
            `text` is the prompt as read (`prompt`: its last `context_tokens` tokens)
            followed by what is drawn, at most MAX_NEW_TOKENS_ONE tokens (`ids` is [[0]], one
            pad, for none); draws come from `decoding.portable_uniforms(seed, ...)`, the same
            in TensorFlow and LiteRT (not those of `generate`, whose random ops LiteRT
            lacks). Temperature <= 0 is greedy, top_k <= 0 and top_p >= 1 are off.
        score(tokens: int32[1, n], states: float[1, S]) -> {log_probs: float[1, n - 1], states}
            log p(tokens[i] | what came before) for i >= 1, reading from `states` (zeros and
            tokens[0] = bos at the start of a text); a text is scored in windows, each
            starting with the last token of the one before, with its states.
        prefill_one(inputs: string[1]) -> {token: int32[1], states: float[1, S]}
        step_one(token: int32[1], states) -> {logits: float[1, vocab], states}
            for an app that runs the loop itself: feed `token`, draw from `logits` (ids 0-3,
            pad, unk, bos and eos, are not text: never draw them), feed the drawn id back.
        detokenize(ids: int32[1, steps]) -> {outputs: string[1]}

    An empty batch gives an empty batch.

    Args:
        model: a `LanguageModel`.
        tokenizer: its `Tokenizer`.
        context_tokens: the most prompt tokens read (the last ones).
        defaults: the options of serving_default.
    """

    SIGNATURES = ("serving_default", "generate", "beam_search", "prefill", "extend",
                  "generate_one", "score", "prefill_one", "step_one", "detokenize")

    def __init__(self, model, tokenizer: Tokenizer, context_tokens: int,
                 defaults: GenerationConfig = GenerationConfig()):  # noqa: B008 (frozen)
        super().__init__(name="language_model")
        self.model = model
        self.tokenizer = GraphTokenizer(tokenizer)
        self.context_tokens = context_tokens
        self.defaults = defaults
        # Prompts are encoded as the start of a line (see `line_start_ids`).
        self.line_tokenizer = GraphTokenizer(tokenizer, line_start=True)
        # Each state's shape past the batch: (units,) of a recurrent layer, (M, units) and
        # (M,) of an attention memory; flattened side by side into one (batch, S) tensor.
        self.state_shapes = [[tuple(state.shape[1:]) for state in layer]
                             for layer in model.initial_states(1)]
        # Added to every step's logits: the ids that are not text are never drawn.
        self.special_penalty = tf.scatter_nd([[PAD_ID], [UNK_ID], [BOS_ID], [EOS_ID]],
                                             [-1e9] * 4, [model.vocab_size])
        # Traced here, where the width of the states is known, so that their shape is static.
        width = sum(math.prod(shape) for shapes in self.state_shapes for shape in shapes)
        self.step_one = tf.function(self._step_one, input_signature=[
            tf.TensorSpec([1], tf.int32, name="token"),
            tf.TensorSpec([1, width], tf.float32, name="states")])
        self.score = tf.function(self._score, input_signature=[
            tf.TensorSpec([1, None], tf.int32, name="tokens"),
            tf.TensorSpec([1, width], tf.float32, name="states")])

    # -- graph pieces ---------------------------------------------------------------------

    def context_ids(self, inputs):
        """The ids the model reads of each prompt: `(batch,)` strings -> ragged `(batch, None)`."""
        return self.line_tokenizer.tokenize(inputs)[:, -self.context_tokens:]

    def read_prompts(self, context):
        """`(first_tokens (batch,), states)`: bos and all of a row's context but its last
        token are read; the last (bos for an empty prompt) is the first the loop feeds."""
        lengths = tf.cast(context.row_lengths(), tf.int32)  # (batch,)
        padded = tf.ensure_shape(context.to_tensor(), [None, None])  # (batch, n)
        tokens = tf.concat([tf.fill([tf.shape(padded)[0], 1], BOS_ID), padded], axis=1)
        first = tf.gather(tokens, lengths, batch_dims=1)
        mask = tf.range(tf.shape(tokens)[1])[None, :] < lengths[:, None]  # (batch, n + 1)
        return first, self.model.advance(tokens, mask=mask)

    def step(self, tokens, states):
        logits, states = self.model.step(tokens, states)
        return logits + self.special_penalty, states, None

    def litert_step(self, tokens, states):
        """`step` as the batch-1 signatures, which LiteRT runs, compute it: an attention
        block's step as LiteRT runs it faster (`CausalSelfAttention.step`), the same
        function up to rounding."""
        logits, states = self.model.step(tokens, states, litert=True)
        return logits + self.special_penalty, states, None

    def sample(self, first, states, max_new_tokens, start_step, temperature, top_k, top_p,
               seed):
        """`(ids, scores, states)` of `max_new_tokens` drawn by one `decoding.decode` loop."""
        max_new_tokens = tf.convert_to_tensor(max_new_tokens, tf.int32)
        checks = [
            tf.debugging.assert_non_negative(max_new_tokens,
                                             message="max_new_tokens must be >= 0"),
            tf.debugging.assert_non_negative(temperature, message="temperature must be >= 0"),
            tf.debugging.assert_non_negative(top_k, message="top_k must be >= 0 (0: off)"),
            tf.debugging.assert_positive(top_p, message="top_p must be in (0, 1]"),
            tf.debugging.assert_less_equal(top_p, 1.0, message="top_p must be in (0, 1]"),
        ]
        sampler = decoding.make_sampler(temperature, top_k, top_p, seed)

        def loop():
            ids, scores, _, new_states = decoding.decode(
                self.step, first, states, max_new_tokens, sampler=sampler, eos_id=NO_EOS,
                start_step=start_step, return_state=True)
            return ids, scores, new_states

        def nothing():  # the loop's buffers cannot be stacked empty (no token or no row)
            batch = tf.shape(first)[0]
            return tf.zeros([batch, 0], tf.int32), tf.zeros([batch]), states

        with tf.control_dependencies(checks):
            return tf.cond((max_new_tokens > 0) & (tf.shape(first)[0] > 0), loop, nothing)

    def continuations(self, context, ids):
        """The text `ids` add after each row's context: `(batch,)` strings."""
        ids = tf.RaggedTensor.from_tensor(ids, row_splits_dtype=context.row_splits.dtype)
        full = self.tokenizer.detokenize(tf.concat([context, ids], axis=1))
        start = tf.strings.length(self.tokenizer.detokenize(context))
        return tf.strings.substr(full, start, tf.strings.length(full) - start)

    def flatten(self, states):
        batch = tf.shape(tf.nest.flatten(states)[0])[0]
        return tf.concat([tf.reshape(state, [batch, -1]) for state in tf.nest.flatten(states)],
                         axis=1)  # (batch, S)

    def unflatten(self, flat):
        parts = iter(tf.split(flat, [math.prod(shape) for shapes in self.state_shapes
                                     for shape in shapes], 1))
        return [[tf.reshape(next(parts), [-1, *shape]) for shape in shapes]
                for shapes in self.state_shapes]

    # -- signatures -----------------------------------------------------------------------

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def serving_default(self, inputs):
        d = self.defaults
        return self._generate(inputs, d.max_new_tokens, d.temperature, d.top_k, d.top_p, d.seed)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string), _SCALAR_INT, _SCALAR_FLOAT,
                                  _SCALAR_INT, _SCALAR_FLOAT, _SCALAR_INT])
    def generate(self, inputs, max_new_tokens, temperature, top_k, top_p, seed):
        return self._generate(inputs, max_new_tokens, temperature, top_k, top_p, seed)

    def _generate(self, inputs, max_new_tokens, temperature, top_k, top_p, seed):
        context = self.context_ids(inputs)
        first, states = self.read_prompts(context)
        ids, scores, _ = self.sample(first, states, max_new_tokens, 0, temperature, top_k,
                                     top_p, seed)
        return {"outputs": self.continuations(context, ids), "ids": ids, "scores": scores}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string), _SCALAR_INT, _SCALAR_INT])
    def beam_search(self, inputs, max_new_tokens, beam_size):
        checks = [
            tf.debugging.assert_positive(beam_size, message="beam_size must be >= 1"),
            tf.debugging.assert_less_equal(beam_size, decoding.MAX_BEAM,
                                           message=f"beam_size must be <= {decoding.MAX_BEAM}"),
            tf.debugging.assert_non_negative(max_new_tokens,
                                             message="max_new_tokens must be >= 0"),
        ]
        context = self.context_ids(inputs)

        def search():
            first, states = self.read_prompts(context)
            ids, scores, _ = decoding.beam_search(
                self.step, first, decoding.tile_beams(states, beam_size), beam_size,
                max_new_tokens, eos_id=NO_EOS)
            return ids[:, 0], scores[:, 0]  # the best: (batch, steps), (batch,)

        def nothing():  # no row, or no token to draw
            batch = tf.shape(inputs)[0]
            return tf.zeros([batch, 0], tf.int32), tf.zeros([batch])

        with tf.control_dependencies(checks):
            best, scores = tf.cond((tf.size(inputs) > 0) & (max_new_tokens > 0), search,
                                   nothing)
        return {"outputs": self.continuations(context, best), "ids": best, "scores": scores}

    # -- batch-1 signatures: static shapes but the lengths, for LiteRT --------------------

    def one_context(self, inputs):
        """The ids the model reads of one prompt, `(1,)` string -> `(1, n)`. One row needs
        no padding: its flat values are the row (the ragged-to-dense op has no builtin)."""
        return self.line_tokenizer.tokenize(inputs).flat_values[-self.context_tokens:][None]

    def read_one(self, context):
        """`read_prompts` for one unpadded row: `(first (1,), states)`."""
        tokens = tf.concat([[[BOS_ID]], context], axis=1)  # (1, n + 1)
        return tokens[:, -1], self.model.advance(tokens[:, :-1])

    @tf.function(input_signature=[tf.TensorSpec([1], tf.string), _SCALAR_INT, _SCALAR_FLOAT,
                                  _SCALAR_INT, _SCALAR_FLOAT, _SCALAR_INT])
    def generate_one(self, inputs, max_new_tokens, temperature, top_k, top_p, seed):
        context = self.one_context(inputs)
        first, states = self.read_one(context)
        count = tf.clip_by_value(max_new_tokens, 0, MAX_NEW_TOKENS_ONE)
        uniforms = decoding.portable_uniforms(seed, tf.maximum(count, 1))
        sampler = decoding.make_sampler(temperature, top_k, top_p, uniforms=uniforms)
        # A constant-size loop buffer of at least one step (a TensorArray of size 0 cannot
        # be stacked), cut to `count` after.
        ids = self.draw_one(first, states, tf.maximum(count, 1), sampler)
        # LiteRT cannot return an empty tensor: for 0 tokens, one pad stands for none.
        ids = tf.where(tf.range(tf.shape(ids)[1])[None, :] < count, ids, PAD_ID)
        return {"text": self.tokenizer.detokenize(tf.concat([context, ids], axis=1)),
                "ids": ids, "prompt": self.tokenizer.detokenize(context)}

    def draw_one(self, first, states, count, sampler):
        """The `(1, count)` ids `generate_one` draws. With an attention memory, its memory is
        kept in blocks of `ATTENTION_BLOCK` steps (`decoding.decode_in_blocks`), which LiteRT
        runs faster than rewriting it at every step: the same tokens up to rounding."""
        if self.model.attention is None or not self.model.attention_memory:
            return decoding.decode(self.litert_step, first, states, count, sampler=sampler,
                                   eos_id=NO_EOS, with_scores=False)[0]
        *layers, memory = states
        block = tf.zeros([1, ATTENTION_BLOCK, memory[0].shape[-1]], memory[0].dtype)

        def step(tokens, states, memory, filled):
            logits, states = self.model.block_step(tokens, states, memory, filled)
            return logits + self.special_penalty, states, None

        return decoding.decode_in_blocks(
            step, self.model.merge_block, first, [*layers, block], memory, ATTENTION_BLOCK,
            count, sampler=sampler, eos_id=NO_EOS, with_scores=False,
            read_fn=lambda memory: self.model.filled_memory(memory, MEMORY_GRANULE))[0]

    @tf.function(input_signature=[tf.TensorSpec([1], tf.string)])
    def prefill_one(self, inputs):
        first, states = self.read_one(self.one_context(inputs))
        return {"token": first, "states": self.flatten(states)}

    def _step_one(self, token, states):
        logits, states = self.model.step(token, self.unflatten(states), litert=True)
        return {"logits": logits, "states": self.flatten(states)}

    def _score(self, tokens, states):
        logits, states = self.model(tokens[:, :-1], initial_state=self.unflatten(states),
                                    return_state=True)  # (1, n - 1, vocab)
        log_probs = tf.nn.log_softmax(logits)
        chosen = tf.gather(log_probs, tokens[:, 1:], batch_dims=2)  # (1, n - 1)
        return {"log_probs": chosen, "states": self.flatten(states)}

    @tf.function(input_signature=[tf.TensorSpec([1, None], tf.int32, name="ids")])
    def detokenize(self, ids):
        return {"outputs": self.tokenizer.detokenize(ids)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def prefill(self, inputs):
        context = self.context_ids(inputs)
        first, states = self.read_prompts(context)
        return {"tokens": first, "states": self.flatten(states),
                "context_ids": context.to_tensor(),
                "context_lengths": tf.cast(context.row_lengths(), tf.int32)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32),
                                  tf.TensorSpec([None, None], tf.float32), _SCALAR_INT,
                                  _SCALAR_INT, _SCALAR_FLOAT, _SCALAR_INT, _SCALAR_FLOAT,
                                  _SCALAR_INT])
    def extend(self, tokens, states, max_new_tokens, start_step, temperature, top_k, top_p,
               seed):
        ids, scores, states = self.sample(tokens, self.unflatten(states), max_new_tokens,
                                          start_step, temperature, top_k, top_p, seed)
        return {"ids": ids, "scores": scores, "states": self.flatten(states)}
