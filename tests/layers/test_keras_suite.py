"""Keras's own tests of its recurrent layers, run on ours.

The installed Keras ships `simple_rnn_test.py`, `lstm_test.py`, `gru_test.py` and
`bidirectional_test.py` beside its layers. Copied here with one line changed, their
`from keras.src import layers` pointed at `keras_shim` (our SimpleRNN, LSTM, GRU, their cells
and Bidirectional under Keras's names), every one of them must pass but the two that call
`Bidirectional._can_attempt_fused_*`, private helpers of Keras's own class.
"""

import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import keras

from nlpapps import layers

import keras_shim

KERAS_TESTS = Path(keras.__file__).parent / "src" / "layers" / "rnn"
FILES = ["simple_rnn_test.py", "lstm_test.py", "gru_test.py", "bidirectional_test.py"]
IMPORT = "from keras.src import layers\n"
SHIM_IMPORT = "import keras_shim as layers\n"
DESELECTED = [
    "bidirectional_test.py::SimpleRNNTest::test_fused_lstm_eligibility",
    "bidirectional_test.py::SimpleRNNTest::test_fused_gru_eligibility",
]


def test_the_shim_maps_keras_names_to_ours():
    for name in ("SimpleRNN", "SimpleRNNCell", "LSTM", "LSTMCell", "GRU", "GRUCell",
                 "Bidirectional"):
        assert getattr(keras_shim, name) is getattr(layers, name)
    assert keras_shim.Dense is keras.layers.Dense


def test_keras_rnn_tests_pass_on_our_layers(tmp_path):
    for name in FILES:
        source = (KERAS_TESTS / name).read_text()
        assert source.count(IMPORT) == 1, f"{name}: the layers import has changed"
        (tmp_path / name).write_text(source.replace(IMPORT, SHIM_IMPORT))
    report = tmp_path / "report.xml"
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join(
               [str(Path(keras_shim.__file__).parent), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs",
         "--rootdir", str(tmp_path), f"--junitxml={report}",
         *(f"--deselect={test}" for test in DESELECTED), *FILES],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]

    cases = ElementTree.parse(report).getroot().iter("testcase")
    passed, skipped = [], []
    for case in cases:
        outcome = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        test = f"{case.get('classname')}.{case.get('name')}"
        assert outcome in ([], ["skipped"]), f"{test}: {outcome}"
        if outcome:
            skipped.append((test, case.find("skipped").get("message")))
        else:
            passed.append(test)
    # Only the tests of another backend skip themselves (two, for the torch backend).
    assert all("torch" in message for _, message in skipped), skipped
    assert len(passed) >= 30, passed  # 30 with Keras 3.15
    assert f"{len(DESELECTED)} deselected" in result.stdout.splitlines()[-1], result.stdout
