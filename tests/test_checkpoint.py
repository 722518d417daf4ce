"""Tests for nlpapps.checkpoint: what a restart finds after a kill at the worst moment. An
empty or corrupt metadata file and a truncated weights file fall back to the checkpoint before
(and say which epoch was restored); staged files reach their names only with the commit that
names them; the dropout seed states come back with the weights."""

import json
import logging

import keras
import numpy as np
import pytest

from nlpapps import checkpoint
from nlpapps.checkpoint import Checkpoint, CheckpointedCallback

X = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
Y = X.sum(axis=1, keepdims=True)


def model() -> keras.Model:
    keras.utils.set_random_seed(1)
    net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6),
                            keras.layers.Dropout(0.5), keras.layers.Dense(1)])
    net.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    return net


class Record(CheckpointedCallback):
    """Counts epochs; stages a file naming the epoch."""

    name = "record"

    def __init__(self, folder):
        super().__init__(folder, {"epochs": []})

    def on_epoch_end(self, epoch, logs=None):
        self.state["epochs"].append(epoch + 1)
        self.stage_json("record.json", {"epoch": epoch + 1})


def train(folder, epochs):
    """`(model, weights after each epoch)` of a run in `folder` that resumes where it can."""
    net, record = model(), Record(folder)
    ckpt = Checkpoint(folder, states=[record])
    first = ckpt.restore(net)
    snapshots = {}
    saver = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: snapshots.__setitem__(
        epoch + 1, [np.array(v) for v in net.variables]))
    net.fit(X, Y, batch_size=8, epochs=epochs, initial_epoch=first, shuffle=False, verbose=0,
            callbacks=[record, saver, ckpt])
    return net, snapshots, record


def assert_variables(net, expected):
    for variable, value in zip(net.variables, expected, strict=True):
        np.testing.assert_array_equal(np.array(variable), value, err_msg=variable.path)


def test_a_resumed_run_ends_where_an_uninterrupted_one_ends(tmp_path):
    straight, _, _ = train(tmp_path / "straight", 4)
    train(tmp_path / "resumed", 2)
    resumed, _, record = train(tmp_path / "resumed", 4)
    # Dropout draws the same masks: the seed states were restored with the weights.
    assert checkpoint.rng_variables(resumed)
    assert_variables(resumed, [np.array(v) for v in straight.variables])
    assert record.state["epochs"] == [1, 2, 3, 4]
    assert json.loads((tmp_path / "resumed" / "record.json").read_text()) == {"epoch": 4}


@pytest.mark.parametrize("damage", ["empty", "corrupt", "missing weights"])
def test_unreadable_metadata_falls_back_to_the_checkpoint_before(tmp_path, caplog, damage):
    _, snapshots, _ = train(tmp_path, 2)
    folder = tmp_path / checkpoint.CHECKPOINT_DIR
    metadata = folder / checkpoint.METADATA_FILE
    if damage == "missing weights":
        (folder / json.loads(metadata.read_text())["weights"]).unlink()
    else:
        metadata.write_text("" if damage == "empty" else '{"epoch": 2, "wei')
    net, record = model(), Record(tmp_path)
    with caplog.at_level(logging.WARNING, "nlpapps.checkpoint"):
        assert Checkpoint(tmp_path, states=[record]).restore(net) == 1
    assert "trying the one before it" in caplog.text
    assert_variables(net, snapshots[1])
    assert record.state["epochs"] == [1]
    assert checkpoint.resumed_epoch(tmp_path) == (1 if damage != "missing weights" else 2)


def test_truncated_weights_restore_the_epoch_keras_could_read(tmp_path, caplog):
    _, snapshots, _ = train(tmp_path, 2)
    weights = tmp_path / checkpoint.CHECKPOINT_DIR / "epoch-0002.weights.h5"
    weights.write_bytes(weights.read_bytes()[:weights.stat().st_size // 2])
    net = model()
    with caplog.at_level(logging.WARNING, "nlpapps.checkpoint"):
        assert Checkpoint(tmp_path).restore(net) == 1  # the epoch the data is positioned at
    assert_variables(net, snapshots[1])


def test_nothing_readable_starts_from_the_beginning_with_fresh_weights(tmp_path, caplog):
    train(tmp_path, 1)
    (tmp_path / checkpoint.CHECKPOINT_DIR / checkpoint.METADATA_FILE).write_text("")
    fresh = [np.array(v) for v in model().variables]
    net = model()
    with caplog.at_level(logging.WARNING, "nlpapps.checkpoint"):
        assert Checkpoint(tmp_path).restore(net) == 0
    assert "starts from the beginning" in caplog.text
    assert_variables(net, fresh)


def test_staged_files_follow_the_commit(tmp_path):
    train(tmp_path, 1)
    folder = tmp_path / checkpoint.CHECKPOINT_DIR
    metadata = json.loads((folder / checkpoint.METADATA_FILE).read_text())
    staged = metadata["staged"]["record.json"]
    # Killed after the commit, before the rename: the restart finishes it.
    (tmp_path / "record.json").rename(tmp_path / staged)
    checkpoint.write_json(tmp_path / staged, {"epoch": 1})
    # Killed after staging the next epoch's file, before its commit: the restart drops it.
    orphan = tmp_path / f".other{checkpoint.STAGED}"
    orphan.write_text("{}")
    Checkpoint(tmp_path, states=[Record(tmp_path)]).restore(model())
    assert json.loads((tmp_path / "record.json").read_text()) == {"epoch": 1}
    assert not (tmp_path / staged).exists() and not orphan.exists()


def test_write_bytes_replaces_whole_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "file.json"
    checkpoint.write_json(path, {"a": 1})
    checkpoint.write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["file.json"]
