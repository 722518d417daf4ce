"""Multi-worker training (`--strategy multi-worker`): two worker processes on localhost, each
with its own TF_CONFIG, train a tiny language model, then a tiny translator. Both must exit, hold
the same weights, and match one process trained over the same global batches; each language
model worker must have read its own half of every global batch; only the chief may write its
output folder."""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

TESTS = Path(__file__).parent
TIMEOUT_S = 240  # both workers together; on a loaded 2-core machine they take ~40 s

# Dropout off (its masks are drawn per replica), clipping out of reach (Keras clips each
# replica's gradient before the sum), no dev text (the best-dev choice is not under test).
WORKER = """
import json, sys
sys.path.insert(0, {apps!r})
import numpy as np
from tiny_language_model import text, tiny_config
from nlpapps import training
from nlpapps.apps import language_model as lm
from nlpapps.apps.language_model_data import window_dataset

strategy_name, out, report = sys.argv[1:4]
config = tiny_config(strategy=strategy_name, model_type="char", vocab_size=100, embedding_dim=8,
                     units=8, seq_len=16, batch_size=8, epochs=2, steps_per_epoch=3,
                     dropout=0.0, clipnorm=1000.0)
model, tokenizer = lm.train(config, text("train"), "", out)

# The rows of the first global batch this worker reads, as fit reads them.
strategy = training.get_strategy(strategy_name)
ids = np.asarray(lm.line_start_ids(tokenizer, text("train")), np.int32)
data = training.shard_by_data(window_dataset(ids, 16, 8, tokenizer.newline_id))
inputs, _ = next(iter(strategy.experimental_distribute_dataset(data)))
rows = strategy.experimental_local_results(inputs)[0].numpy()
np.savez(report, rows=rows, replicas=strategy.num_replicas_in_sync,
         loss=model.history.history["loss"],
         chief=training.is_chief(), **{{f"w{{i}}": w for i, w in enumerate(model.get_weights())}})
"""


# The translator: the fixture pairs' train split, tiny, dropout off, clipping out of reach; the
# global batch of 8 pairs is split 4 and 4. No dev BLEU is computed within its 6 steps.
TRANSLATOR_WORKER = """
import sys
sys.path.insert(0, {tests!r})
import numpy as np
from conftest import PAIRS_TSV, tiny_config, train_split
from nlpapps import training
from nlpapps.apps import translator
from nlpapps.corpora.en_de import read_pairs_tsv

strategy_name, out, report = sys.argv[1:4]
train, dev = train_split(read_pairs_tsv(PAIRS_TSV))
config = tiny_config(strategy=strategy_name, batch_size=8, epochs=2, steps_per_epoch=3,
                     learning_rate=1e-2, clipnorm=1000.0, eval_every=1000)
model = translator.train(config, train, dev, out).model
np.savez(report, loss=model.history.history["loss"], chief=training.is_chief(),
         **{{f"w{{i}}": w for i, w in enumerate(model.get_weights())}})
"""


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_worker(tmp_path: Path, name: str, strategy: str, tf_config: dict | None,
                 worker: str = WORKER):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TMPDIR": str(tmp_path / f"{name}-tmp")}
    env.pop("TF_CONFIG", None)
    if tf_config:
        env["TF_CONFIG"] = json.dumps(tf_config)
    (tmp_path / f"{name}-tmp").mkdir()
    script = textwrap.dedent(worker.format(apps=str(TESTS / "apps"), tests=str(TESTS)))
    log = open(tmp_path / f"{name}.log", "w")
    return subprocess.Popen([sys.executable, "-c", script, strategy, str(tmp_path / name / "out"),
                             str(tmp_path / f"{name}.npz")], env=env, stdout=log,
                            stderr=subprocess.STDOUT)


def weights(report) -> list[np.ndarray]:
    return [report[f"w{i}"] for i in range(sum(k.startswith("w") for k in report.files))]


def run_to_the_end(tmp_path: Path, processes, names):
    """Waits for every process; kills them all and fails with their logs past TIMEOUT_S."""
    try:
        for process in processes:
            process.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        for process in processes:
            process.kill()
        logs = "\n".join(f"--- {name}\n" + (tmp_path / f"{name}.log").read_text()[-3000:]
                         for name in names)
        pytest.fail(f"the workers did not finish in {TIMEOUT_S} s:\n{logs}")
    for name, process in zip(names, processes, strict=True):
        assert process.returncode == 0, (tmp_path / f"{name}.log").read_text()[-5000:]


@pytest.mark.slow
def test_two_workers_train_as_one_process_over_the_same_global_batches(tmp_path):
    ports = free_ports(2)
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    names = ["worker0", "worker1"]
    workers = [start_worker(tmp_path, name, "multi-worker",
                            {"cluster": cluster, "task": {"type": "worker", "index": index}})
               for index, name in enumerate(names)]
    # The one-process reference runs meanwhile, with the default strategy.
    reference = start_worker(tmp_path, "single", "default", None)
    run_to_the_end(tmp_path, [*workers, reference], [*names, "single"])

    chief, other, single = (np.load(tmp_path / f"{name}.npz")
                            for name in [*names, "single"])
    assert int(chief["replicas"]) == int(other["replicas"]) == 2
    assert bool(chief["chief"]) and not bool(other["chief"])

    # Each worker read its own half of the global batch of 8 windows.
    global_rows = single["rows"]
    assert global_rows.shape == (8, 16)
    np.testing.assert_array_equal(chief["rows"], global_rows[:4])
    np.testing.assert_array_equal(other["rows"], global_rows[4:])

    # Synchronous training: the workers hold the very same weights, and those of one process
    # that read the whole global batches (summed gradients of two half-batch means, halved,
    # against the gradient of one mean: equal up to float rounding).
    for a, b, c in zip(weights(chief), weights(other), weights(single), strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-6)
    # ... and they trained: the same losses, going down.
    np.testing.assert_allclose(chief["loss"], single["loss"], rtol=1e-5)
    assert single["loss"][-1] < single["loss"][0] - 0.02

    # Only the chief wrote its output folder; the other worker wrote to a temporary folder
    # that it removed at exit.
    written = {p.relative_to(tmp_path / "worker0" / "out").as_posix()
               for p in (tmp_path / "worker0" / "out").rglob("*")}
    assert {"config.json", "tokenizer.model", "model.weights.h5",
            "checkpoint/training_metadata.json"} <= written
    other_out = tmp_path / "worker1" / "out"
    assert not other_out.exists() or not any(other_out.iterdir())
    assert not any((tmp_path / "worker1-tmp").iterdir())


@pytest.mark.slow
def test_two_translator_workers_train_in_step(tmp_path):
    """Both translator workers exit, end with the very same weights, which are those of one
    process over the same global batches, and only the chief writes its folder. The translator's
    batches are shuffled and padded: every iterator over them must start from the seed's order
    (Keras's `fit` under a strategy opens one to build the model before the one it trains
    from), and each replica's loss must be the mean over the global batch's real tokens, not
    its own."""
    ports = free_ports(2)
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    names = ["worker0", "worker1"]
    processes = [start_worker(tmp_path, name, "multi-worker",
                              {"cluster": cluster, "task": {"type": "worker", "index": index}},
                              TRANSLATOR_WORKER)
                 for index, name in enumerate(names)]
    # The one-process reference runs meanwhile, with the default strategy.
    reference = start_worker(tmp_path, "single", "default", None, TRANSLATOR_WORKER)
    run_to_the_end(tmp_path, [*processes, reference], [*names, "single"])

    chief, other, single = (np.load(tmp_path / f"{name}.npz") for name in [*names, "single"])
    assert bool(chief["chief"]) and not bool(other["chief"])
    for a, b, c in zip(weights(chief), weights(other), weights(single), strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(chief["loss"], other["loss"])
    np.testing.assert_allclose(chief["loss"], single["loss"], rtol=1e-5)
    assert chief["loss"][-1] < chief["loss"][0]
    assert (tmp_path / "worker0" / "out" / "model.weights.h5").is_file()
    other_out = tmp_path / "worker1" / "out"
    assert not other_out.exists() or not any(other_out.iterdir())
