"""`QAModule`: the question-answering model as a string-to-string graph, tokenization and the
vocabulary inside, so that its SavedModel runs with TensorFlow alone
(`nlpapps.export.question_answering_folder` writes it)."""

from __future__ import annotations

import tensorflow as tf

_STRINGS = tf.TensorSpec([None], tf.string)


class QAModule(tf.Module):
    """A question-answering model with string signatures:

        answer(story: string[batch], question: string[batch]) -> {answer: string[batch]}
            the answer as bAbI writes it ("garden", "n,w", "apple,football"); a story is its
            sentences separated by newlines, without bAbI's line numbers.
        serving_default: the same.
        attend(story, question) -> {answer: string[batch],
            attention: float[batch, hops, memory_size], sentences: string[batch, memory_size],
            story_sentences: int32[batch]}
            also the attention of each hop over the sentences the memory kept (the most
            recent `memory_size`, "" after them) and how many sentences the story had.

    Words are the lowercased runs of `[a-z0-9]`; unknown words are left out, as in training.

    Args:
        model: the memory network, `[story_ids, question_ids] -> (logits, attention)`.
        vocab: its `Vocabulary` (`nlpapps.apps.question_answering`): `words`, `answers`,
            `sentence_words`, `question_words`.
        memory_size: the most recent sentences the memory keeps.
    """

    SIGNATURES = ("serving_default", "answer", "attend")

    def __init__(self, model, vocab, memory_size: int):
        super().__init__(name="question_answering")
        self.model = model
        self.memory_size = memory_size
        self.sentence_words, self.question_words = vocab.sentence_words, vocab.question_words
        self.table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
            tf.constant(vocab.words), tf.range(1, len(vocab.words) + 1, dtype=tf.int32)), 0)
        self.answers = tf.constant(vocab.answers)
        self.answer = tf.function(self._answer, input_signature=[_STRINGS, _STRINGS])
        self.serving_default = self.answer
        self.attend = tf.function(self._attend, input_signature=[_STRINGS, _STRINGS])

    def _words(self, text):
        """Known word ids of each string of `text` (any shape) -> ragged, one more axis."""
        cleaned = tf.strings.regex_replace(tf.strings.lower(text), "[^a-z0-9]+", " ")
        words = tf.strings.split(tf.strings.strip(cleaned))
        ids = tf.ragged.map_flat_values(self.table.lookup, words)
        return tf.ragged.boolean_mask(ids, ids > 0)

    def _inputs(self, story, question):
        lines = tf.strings.strip(tf.strings.split(story, "\n"))  # (batch, lines)
        ids = self._words(lines)  # (batch, lines, words)
        # Blank lines are left out; a line of no known word is an empty memory.
        present = tf.strings.length(lines) > 0
        kept, ids = tf.ragged.boolean_mask(lines, present), tf.ragged.boolean_mask(ids, present)
        count = kept.row_lengths()
        kept, ids = kept[:, -self.memory_size:], ids[:, -self.memory_size:]
        story_ids = ids.to_tensor(0, shape=[None, self.memory_size, self.sentence_words])
        question_ids = self._words(question).to_tensor(0, shape=[None, self.question_words])
        return story_ids, question_ids, kept, tf.cast(count, tf.int32)

    def _run(self, story, question):
        story_ids, question_ids, kept, count = self._inputs(story, question)
        logits, attention = self.model([story_ids, question_ids], training=False)
        answer = tf.gather(self.answers, tf.argmax(logits, axis=-1, output_type=tf.int32))
        return answer, attention, kept, count

    def _answer(self, story, question):
        return {"answer": self._run(story, question)[0]}

    def _attend(self, story, question):
        answer, attention, kept, count = self._run(story, question)
        return {"answer": answer, "attention": attention,
                "sentences": kept.to_tensor("", shape=[None, self.memory_size]),
                "story_sentences": count}
