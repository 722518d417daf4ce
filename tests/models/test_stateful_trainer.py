"""Tests for nlpapps.models.stateful_trainer: the states carried from batch to batch are the
states the model reaches reading each row's whole stream, they restart at a pass's first batch,
and gradients stop at the batch edge."""

import keras
import numpy as np
import tensorflow as tf

from nlpapps.apps.language_model_data import stream_dataset
from nlpapps.models.language_model_network import LanguageModel
from nlpapps.models.stateful_trainer import StatefulTrainer
from nlpapps.training import masked_cross_entropy

VOCAB, BATCH, SEQ_LEN = 30, 3, 4


def make_trainer(learning_rate=0.0, cell="lstm"):
    keras.utils.set_random_seed(0)
    model = LanguageModel(vocab_size=VOCAB, embedding_dim=6, units=8, num_layers=2, cell=cell,
                          dropout=0.0)
    model.build()
    trainer = StatefulTrainer(model, BATCH)
    trainer.compile(optimizer=keras.optimizers.SGD(learning_rate), loss=masked_cross_entropy())
    return model, trainer


def stream_ids(length=40):
    return np.random.default_rng(1).integers(3, VOCAB, size=length).astype(np.int32)


def final_states(model, rows):
    _, states = model(rows, return_state=True)
    return [[np.asarray(s) for s in layer] for layer in states]


def carried(trainer):
    return [[np.asarray(v) for v in layer] for layer in trainer.carried]


def test_carried_states_equal_reading_each_row_in_one_pass():
    model, trainer = make_trainer()  # learning rate 0: the weights stay as they are
    ids = stream_ids()
    batches = list(stream_dataset(ids, SEQ_LEN, BATCH).take(2).as_numpy_iterator())
    trainer.fit(stream_dataset(ids, SEQ_LEN, BATCH), steps_per_epoch=2, epochs=1, verbose=0,
                shuffle=False)
    rows = np.concatenate([inputs for (inputs, _), _ in batches], axis=1)  # (batch, 2*seq_len)
    for got, want in zip(carried(trainer), final_states(model, rows)):
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_a_new_pass_starts_from_zero_states():
    model, trainer = make_trainer(cell="gru")
    ids = stream_ids(26)  # 27 tokens with bos: rows of 8, two batches of 4 per pass
    dataset = stream_dataset(ids, SEQ_LEN, BATCH)
    (third_inputs, reset), _ = list(dataset.take(3).as_numpy_iterator())[2]
    assert reset.all()
    trainer.fit(dataset, steps_per_epoch=3, epochs=1, verbose=0, shuffle=False)
    for got, want in zip(carried(trainer), final_states(model, third_inputs)):
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_training_changes_the_weights_and_lowers_the_loss():
    model, trainer = make_trainer(learning_rate=0.5)
    before = [np.asarray(w) for w in model.trainable_weights]
    repeated = np.tile(np.arange(3, 13, dtype=np.int32), 30)
    history = trainer.fit(stream_dataset(repeated, SEQ_LEN, BATCH), steps_per_epoch=20, epochs=3,
                          verbose=0, shuffle=False)
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    assert any(not np.allclose(b, np.asarray(w)) for b, w in zip(before, model.trainable_weights))
    assert len(trainer.trainable_weights) == len(model.trainable_weights)


def test_a_step_follows_the_truncated_gradient_from_the_carried_states():
    model, trainer = make_trainer()
    batches = stream_dataset(stream_ids(), SEQ_LEN, BATCH)
    trainer.fit(batches, steps_per_epoch=1, epochs=1, verbose=0, shuffle=False)  # learning rate 0
    (inputs, _), targets = list(batches.take(2).as_numpy_iterator())[1]
    states = [[tf.constant(v) for v in layer] for layer in carried(trainer)]
    loss_fn = masked_cross_entropy()
    with tf.GradientTape() as tape:
        loss = loss_fn(targets, model(inputs, initial_state=states, training=True))
    gradients = tape.gradient(loss, model.trainable_weights)
    before = [np.asarray(w) for w in model.trainable_weights]

    trainer.optimizer.learning_rate.assign(1.0)  # SGD: weights move by minus the gradient
    trainer.fit(stream_dataset(stream_ids(), SEQ_LEN, BATCH, first_step=1), steps_per_epoch=1,
                epochs=1, verbose=0, shuffle=False)
    for b, w, g in zip(before, model.trainable_weights, gradients):
        expected = b - np.asarray(tf.convert_to_tensor(g))
        np.testing.assert_allclose(np.asarray(w), expected, rtol=1e-4, atol=1e-6)
