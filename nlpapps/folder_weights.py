"""The Keras weights of a model folder, wherever the folder keeps them.

A training folder keeps its model's weights in `model.weights.h5` (Keras's own file, keyed by
each weight's layer path). A finished model folder holds each weight once, in its SavedModel's
variables: the SavedModel's module keeps the Keras model as its `model` attribute, so each
variable is saved under the attribute path that reaches it,

    model/rnn/layers/0/cell/kernel/.ATTRIBUTES/VARIABLE_VALUE   ->   model.rnn.layers[0].cell.kernel

`load_weights` reads either into a built Keras model of the folder's config: the weights file
where there is one (it is the newer while a run trains), else the variables, each matched to the
model's weight at that path (not by position or shape), so that every weight of the model is
set, and set from its own variable, or a ModelError says what does not fit.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from nlpapps.errors import ModelError

WEIGHTS_FILE = "model.weights.h5"  # a training folder's weights
VARIABLES = Path("variables") / "variables"  # a SavedModel's variables, as a checkpoint prefix
_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
_ROOT = "model/"  # the serving module's attribute holding the Keras model
_OPTIMIZER = "optimizer/"  # a compiled model's optimizer state: not a weight


def has_weights(folder: Path) -> bool:
    """Whether `folder` holds weights that `load_weights` can try: a weights file or a
    SavedModel's variables."""
    folder = Path(folder)
    return (folder / WEIGHTS_FILE).is_file() or (folder / f"{VARIABLES}.index").is_file()


def load_weights(model, folder: Path, grow: bool = False) -> None:
    """Sets the weights of the built Keras `model` from `folder` (its `model.weights.h5`, else
    its SavedModel's variables). ModelError if the folder has neither, if they are unreadable,
    or if they hold another architecture (a weight of another shape, one the model lacks, or a
    model weight with no value in the folder).

    With `grow`, `model` may have weights that the folder lacks (a deeper stack): those keep
    their fresh initialization, and every other weight is loaded."""
    folder = Path(folder)
    if not has_weights(folder):
        raise ModelError(f"{folder} has no weights (neither {WEIGHTS_FILE} nor a SavedModel's "
                         "variables); train the model to the end or pick another folder")
    if (folder / WEIGHTS_FILE).is_file():
        _load_weights_file(model, folder, grow)
    else:
        _load_variables(model, folder, grow)


def _load_weights_file(model, folder: Path, grow: bool) -> None:
    path = folder / WEIGHTS_FILE
    try:
        if grow:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*could not be loaded")
                model.load_weights(path, skip_mismatch=True)
        else:
            model.load_weights(path)
    except ValueError as error:
        raise ModelError(f"{folder} holds another architecture than this model's: "
                         f"{_first_line(error)}") from None
    except OSError as error:  # h5py: a truncated or foreign file
        raise ModelError(f"{path} could not be read, it may be corrupt: {_first_line(error)}"
                         ) from None


def saved_variables(folder: Path) -> dict[str, np.ndarray]:
    """The values of the Keras model's variables in the SavedModel of `folder`, by their
    attribute path below the model (`rnn/layers/0/cell/kernel`), leaving out an optimizer's
    state (saved with a model still compiled for training); ModelError if unreadable."""
    import tensorflow as tf

    prefix = str(Path(folder) / VARIABLES)
    try:
        reader = tf.train.load_checkpoint(prefix)
        return {key[len(_ROOT):-len(_SUFFIX)]: reader.get_tensor(key)
                for key in reader.get_variable_to_shape_map()
                if key.startswith(_ROOT) and key.endswith(_SUFFIX)
                and not key.startswith(_ROOT + _OPTIMIZER)}
    except (tf.errors.OpError, ValueError, IndexError, OSError) as error:  # IndexError: cut
        raise ModelError(f"{folder}'s SavedModel variables could not be read, they may be "
                         f"corrupt: {_first_line(error)}") from None


def attribute(root, path: str):
    """The object at the attribute path `path` (`rnn/layers/0/cell/kernel`) below `root`,
    stepping into lists by index; None where the path leads nowhere."""
    node = root
    for part in path.split("/"):
        if part.isdigit():
            try:
                node = node[int(part)]
            except (IndexError, KeyError, TypeError):
                return None
        else:
            node = getattr(node, part, None)
        if node is None:
            return None
    return node


def _load_variables(model, folder: Path, grow: bool) -> None:
    values = saved_variables(folder)
    weights = {id(weight): weight for weight in model.weights}
    assigned: set[int] = set()
    for path, value in sorted(values.items()):
        weight = attribute(model, path)
        if id(weight) not in weights:
            raise ModelError(f"{folder} holds another architecture than this model's: this "
                             f"model has no weight at {path}")
        if tuple(weight.shape) != value.shape:
            raise ModelError(f"{folder} holds another architecture than this model's: {path} "
                             f"is {value.shape} there, {tuple(weight.shape)} here")
        weight.assign(value)
        assigned.add(id(weight))
    missing = [weight.path for weight in model.weights if id(weight) not in assigned]
    if missing and not grow:
        raise ModelError(f"{folder} holds another architecture than this model's: it has no "
                         f"value for {missing[0]}" + (f" and {len(missing) - 1} more weights"
                                                      if len(missing) > 1 else ""))


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
