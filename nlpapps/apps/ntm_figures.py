"""The figures of the neural Turing machine's model card (`docs/ntm.md`): the heads' weightings
during one copy sequence (Graves et al. 2014, figure 6) and bit errors against length."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nlpapps.apps import turing_machine
from nlpapps.apps.model_folder_reader import ModelError


def head_weightings(model, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs the NTM of `model` over one sequence `(time, channels)` step by step; returns the
    output probabilities `(time, outputs)`, the write and the read weightings `(time, N)` of
    its first write and first read head."""
    cell = model.get_layer("ntm").cell
    readout = model.get_layer("readout")
    states = cell.get_initial_state(1)
    outputs, writes, reads = [], [], []
    for step in inputs:
        output, states = cell(step[None].astype("float32"), states)
        outputs.append(np.asarray(readout(output))[0])
        weightings = np.asarray(states[-1]).reshape(cell.heads, cell.memory_size)
        reads.append(weightings[0])
        writes.append(weightings[cell.read_heads])
    probabilities = 1.0 / (1.0 + np.exp(-np.array(outputs)))
    return probabilities, np.array(writes), np.array(reads)


def weightings_figure(folder: Path, length: int, seed: int, out: Path) -> None:
    """Inputs, outputs, and the write and read weightings over the memory locations while the
    copy NTM in `folder` copies one seeded sequence of `length`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model, config = turing_machine.load(folder)
    if config.model != "ntm" or config.task != "copy":
        raise ModelError(f"{folder} holds a {config.model} trained on {config.task}; the "
                         "weightings figure needs an ntm trained on copy")
    task = config.get_task()
    inputs, targets, weights = task.batch(np.random.default_rng(seed), length, 1)
    outputs, writes, reads = head_weightings(model, inputs[0])
    outputs = outputs * weights[0][:, None]  # only the answer is scored
    used = np.flatnonzero((writes + reads).max(axis=0) > 0.01)
    low = max(0, used.min() - 2) if used.size else 0
    high = min(config.memory_size, used.max() + 3) if used.size else config.memory_size

    figure, axes = plt.subplots(2, 2, figsize=(9, 6.5), sharex="col",
                                gridspec_kw={"height_ratios": [1, 3]})
    panels = [(axes[0, 0], inputs[0].T, "inputs", "channel"),
              (axes[0, 1], outputs.T, "outputs", "bit"),
              (axes[1, 0], writes[:, low:high].T, "write weightings", "memory location"),
              (axes[1, 1], reads[:, low:high].T, "read weightings", "memory location")]
    for axis, image, title, ylabel in panels:
        extent = None
        if ylabel == "memory location":
            extent = (-0.5, image.shape[1] - 0.5, high - 0.5, low - 0.5)
        axis.imshow(image, aspect="auto", cmap="gray_r", vmin=0, vmax=1,
                    interpolation="nearest", extent=extent)
        axis.set_title(title)
        axis.set_ylabel(ylabel)
        axis.yaxis.get_major_locator().set_params(integer=True)
    for axis in axes[1]:
        axis.set_xlabel("time step")
    figure.suptitle(f"NTM copying a sequence of {length} 8-bit vectors "
                    f"(locations {low}-{high - 1} of {config.memory_size})")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)


def lengths_figure(ntm_folder: Path, lstm_folder: Path, lengths: list[int], sequences: int,
                   seed: int, out: Path) -> dict[str, list[float]]:
    """Bit errors per sequence against length for the NTM and its LSTM baseline (both trained
    on the same task); prints the table as Markdown and returns it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = {}
    for name, folder in (("NTM", ntm_folder), ("LSTM", lstm_folder)):
        models[name] = turing_machine.load(folder)
    tasks = {config.task for _, config in models.values()}
    if len(tasks) != 1:
        raise ModelError(f"the models were trained on different tasks ({', '.join(tasks)})")
    table = {}
    for name, (model, config) in models.items():
        table[name] = [turing_machine.evaluate(model, config.get_task(), length, sequences,
                                               seed) for length in lengths]
    print("| length | " + " | ".join(table) + " |")
    print("|---:|" + "---:|" * len(table))
    for i, length in enumerate(lengths):
        print(f"| {length} | " + " | ".join(f"{table[name][i]:.2f}" for name in table) + " |")

    figure, axis = plt.subplots(figsize=(6.5, 4))
    for name, values in table.items():
        axis.plot(lengths, values, marker="o", label=name)
    trained = max(config.lengths[1] for _, config in models.values())
    axis.axvline(trained, color="gray", linestyle=":", label=f"longest trained ({trained})")
    axis.set_xlabel("sequence length")
    axis.set_ylabel("bit errors per sequence")
    axis.set_yscale("symlog", linthresh=1)
    axis.set_title(f"{tasks.pop()}: {sequences} sequences per length")
    axis.legend()
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return table
