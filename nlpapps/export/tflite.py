"""LiteRT (TFLite) files from a translator's or language model's SavedModel folder:
conversion, quantization and an op audit. What differs by app (signatures, calibration
inputs, metadata) is in the module the registry names as its `tflite`
(`nlpapps.export.translator_conversion`, `nlpapps.export.language_model_conversion`). The files
run with `nlpapps.serving.litert_translator` and `nlpapps.serving.litert_language_model`;
`nlpapps.export.litert_report` compares them with the SavedModel.

    nlpapps export --model saved_models/translator-en-de --format tflite --quantize dynamic

Conversion needs the folder alone. The batch-1 signatures of `TranslatorModule`
(`nlpapps.serving.translator_module`) are frozen first (variables become constants):
converted straight from the SavedModel, the variables stay READ_VARIABLE ops inside the WHILE
loops, which fail when the file runs. The file holds LiteRT builtins and the two TF Text
tokenizer ops (`TFTEXT_OPS`), so it runs with

    InterpreterWithCustomOps(
        custom_op_registerers=tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS,
        model_content=open(path, "rb").read())

Two kinds of file:
    one call (default): `serving_default(inputs: string[1]) -> {outputs: string[1],
        scores: float[1], truncated: bool[1]}`, the greedy translation of
        `TranslatorModule.translate_one`, and `beam(inputs: string[1], alpha: float32) ->
        {outputs, scores, truncated}`, the best of a beam search of `BEAM_ONE_SIZE`
        hypotheses (`TranslatorModule.translate_beam_one`).
    step-wise (`stepwise=True`): `encode`, `decode_step` and `detokenize`, as documented in
        `TranslatorModule`, for an app that runs the decoding loop itself.

Quantization (`QUANTIZATIONS`):
    none: float32.
    dynamic: int8 weights for the matmuls and the embedding, one scale per matrix;
        activations stay float and the matmuls quantize them on the fly.
    float16: float16 weights, widened to float32 when the file is loaded.
    int8: int8 weights and int8 activations, with ranges calibrated on
        `representative_texts` (source sentences from the training data): the matmuls, gates,
        attention, softmaxes and embedding lookups all run int8 kernels. Calibration runs the
        whole graph, tokenizer and loops included. What stays float is the state the WHILE
        loops carry from step to step (quantized again at the top of each step) and the
        file's interface: a fully integer model (int8-only op set, int8 input and output)
        cannot be made from this graph, whose input and output are strings and whose
        tokenizer ops have no integer kernels. The step-wise file keeps float32 `state`,
        `values`, `keys` and `logits` for the app, quantized inside `decode_step`.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from nlpapps.apps.registry import APPS, app_of, resolve
from nlpapps.apps.model_folder_reader import ModelError, app_of_folder, load_saved_model
from nlpapps.errors import ExportError
from nlpapps.serving.litert_interpreter import first_line
from nlpapps.text_bytes import to_utf8

log = logging.getLogger("nlpapps.export")

QUANTIZATIONS = ("none", "dynamic", "float16", "int8")
# The custom ops of the tokenizer (tensorflow_text.FastSentencepieceTokenizer); every other op
# of an exported file must be a LiteRT builtin.
TFTEXT_OPS = frozenset({"TFText>FastSentencepieceTokenize", "TFText>FastSentencepieceDetokenize"})
FILE_SUFFIXES = {"none": "float32", "dynamic": "dynamic", "float16": "float16", "int8": "int8"}


# -- conversion --------------------------------------------------------------------------------

def default_output(model_dir: Path, quantize: str, stepwise: bool = False) -> Path:
    """`translator-en-de.dynamic.tflite` (`.steps.tflite` step-wise) beside the folder."""
    model_dir = Path(model_dir)
    kind = ".steps" if stepwise else ""
    return model_dir.parent / f"{model_dir.name}.{FILE_SUFFIXES[quantize]}{kind}.tflite"


def convert(model_dir: Path, quantize: str = "none",
            representative_texts: Sequence[str | bytes] | None = None,
            stepwise: bool = False) -> bytes:
    """The LiteRT flatbuffer of the translator or language-model SavedModel in `model_dir`.

    Raises ModelError for a missing, corrupt or wrong-kind folder and ExportError for the
    rest (see `export_tflite`).
    """
    import tensorflow as tf
    import tensorflow_text as tf_text

    _check_quantize(quantize, representative_texts)
    kind = model_kind(model_dir)
    lite = conversion_module(kind)
    if hasattr(lite, "check_exportable"):
        lite.check_exportable(Path(model_dir))
    loaded = load_saved_model(Path(model_dir), kind)
    names = lite.SIGNATURES[stepwise]
    missing = [saved for saved, _ in names if saved not in loaded.signatures]
    if missing:
        raise ExportError(
            f"{model_dir} has no {', '.join(missing)} signature (it was exported before "
            "TFLite export existed); re-export it from its training folder with "
            "`nlpapps export --format savedmodel`")
    functions = [_frozen(name, loaded.signatures[saved]) for saved, name in names]
    converter = tf.lite.TFLiteConverter.from_concrete_functions(functions, loaded)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.allow_custom_ops = True  # the TF Text ops; `audit_ops` refuses any other
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "dynamic":
        # One scale per matrix rather than per output channel: the tied embedding matrix,
        # read by the lookup and by the output layer, is then stored once instead of as two
        # int8 copies with different scales.
        converter._experimental_disable_per_channel = True
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantize == "int8":
        # _check_quantize refused int8 without representative texts.
        texts = [to_utf8(text) for text in representative_texts or ()]
        converter.representative_dataset = lite.representative_samples(loaded, texts, stepwise)
        # Calibration runs the graph, so its interpreter needs the tokenizer ops. The
        # converter takes them only through this attribute.
        converter.target_spec._experimental_custom_op_registerers = list(
            tf_text.tflite_registrar.SELECT_TFTEXT_OPS)
    try:
        with warnings.catch_warnings():
            # Calibration runs TensorFlow's own tf.lite.Interpreter, which warns that it is
            # deprecated in favour of LiteRT's, the one that runs the file afterwards.
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
            model = converter.convert()
    except Exception as error:  # noqa: BLE001  (the converter raises many kinds)
        log.debug("conversion failed", exc_info=True)
        raise ExportError(f"TFLite conversion of {model_dir} failed: {first_line(error)}") \
            from None
    if hasattr(lite, "file_metadata"):
        model = with_metadata(model, lite.file_metadata(Path(model_dir)))
    return model


def model_kind(model_dir: Path) -> str:
    """The kind of model in `model_dir` (from its config.json), one whose app has a LiteRT
    export (the registry's `tflite`); ModelError otherwise."""
    app = app_of_folder(Path(model_dir))
    if not app.has("tflite"):
        takes = " and ".join(f"{a.name}s" for a in APPS if a.has("tflite"))
        raise ModelError(f"{model_dir} holds a {app.name}; TFLite export takes {takes}")
    return app.kind


def conversion_module(kind: str):
    """The module of the app's LiteRT conversion (the registry's `tflite`): `SIGNATURES`,
    `representative_samples` and, if the file carries metadata, `file_metadata`; if some of
    its models cannot be converted, `check_exportable(model_dir)` raises ExportError for
    them."""
    app = app_of(kind)
    if app.tflite is None:
        raise ModelError(f"a {app.name} has no TFLite export")
    return resolve(app.tflite)


def _frozen(name: str, signature):
    """The signature with its variables as constants, named `name`, with named outputs."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import \
        convert_variables_to_constants_v2

    # The loops stay functional WHILE ops (lowering them would give TF1 control flow).
    frozen = convert_variables_to_constants_v2(signature, lower_control_flow=False)
    specs = signature.structured_input_signature[1]  # {input name: TensorSpec}
    input_names = [tensor.name.split(":")[0] for tensor in frozen.inputs]
    output_names = sorted(signature.structured_outputs)  # the frozen function's flat order

    def call(*inputs):
        return dict(zip(output_names, frozen(*inputs)))

    # With several functions the converter names each signature after its function.
    call.__name__ = name
    return tf.function(call, input_signature=[specs[n] for n in input_names]
                       ).get_concrete_function()


def numpy_function(signature) -> Callable[..., dict[str, np.ndarray]]:
    """A SavedModel signature taking and returning numpy arrays, as a LiteRT runner does: what
    int8 calibration and the report call the float model with."""
    import tensorflow as tf

    def call(**inputs):
        outputs = signature(**{name: tf.constant(value) for name, value in inputs.items()})
        return {name: value.numpy() for name, value in outputs.items()}
    return call


def with_metadata(model_bytes: bytes, entries: dict[str, bytes]) -> bytes:
    """The file `model_bytes` with `entries` added to its metadata (named byte buffers that
    LiteRT keeps beside the graph and does not run)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    model.metadata = list(model.metadata or [])
    for name, data in entries.items():
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(data, np.uint8)
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name, entry.buffer = name.encode(), len(model.buffers) - 1
        model.metadata.append(entry)
    builder = flatbuffers.Builder(len(model_bytes) + sum(map(len, entries.values())) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _check_quantize(quantize: str, representative_texts) -> None:
    if quantize not in QUANTIZATIONS:
        raise ExportError(f"unknown quantization {quantize!r}; use one of "
                          f"{', '.join(QUANTIZATIONS)}")
    if quantize == "int8" and not representative_texts:
        raise ExportError("int8 quantization needs representative texts to calibrate on "
                          "(source sentences from the training data)")


def export_tflite(model_dir: Path, output: Path, quantize: str = "none",
                  representative_texts: Sequence[str | bytes] | None = None,
                  stepwise: bool = False) -> Path:
    """Converts the translator SavedModel in `model_dir`, audits its ops and writes `output`.

    Args:
        model_dir: a translator folder (SavedModel + config.json + tokenizer.model).
        output: the `.tflite` file to write; written to a temporary file beside it and renamed,
            so a failure leaves no partial file.
        quantize: one of QUANTIZATIONS.
        representative_texts: source sentences to calibrate int8 on (a few hundred).
        stepwise: write the encode / decode_step / detokenize signatures instead of one call.

    Returns:
        `output`. Raises ModelError (bad folder) or ExportError.
    """
    output = Path(output)
    _check_quantize(quantize, representative_texts)
    if output.is_dir():
        raise ExportError(f"output {output} is a folder; give a file name")
    with _atomic_file(output) as file:  # made first, so an unwritable path fails fast
        model = convert(model_dir, quantize, representative_texts, stepwise)
        audit_ops(model)
        file.write(model)
    return output


@contextlib.contextmanager
def _atomic_file(path: Path):
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise ExportError(f"cannot write {path}: {error.strerror or error}") from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp's 0600 -> what open() would give (0644)
        with os.fdopen(fd, "wb") as file:
            yield file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- what a file holds -------------------------------------------------------------------------

def _schema():
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def _read_model(model_bytes: bytes):
    schema = _schema()
    if len(model_bytes) < 8 or model_bytes[4:8] != b"TFL3":
        raise ExportError("not a LiteRT (TFLite) flatbuffer")
    return schema, schema.Model.GetRootAs(model_bytes, 0)


def tflite_ops(model_bytes: bytes) -> set[str]:
    """The ops that a LiteRT file's subgraphs run: builtin names ("FULLY_CONNECTED", "WHILE")
    and custom op names ("TFText>FastSentencepieceTokenize", "FlexStringSplit")."""
    schema, model = _read_model(model_bytes)
    builtin_names = {code: name for name, code in vars(schema.BuiltinOperator).items()
                     if not name.startswith("_")}
    names = []
    for index in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(index)
        # Codes past 127 are only in builtin_code; older files only have the deprecated one.
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            names.append(code.CustomCode().decode("utf-8", "replace"))
        else:
            names.append(builtin_names.get(builtin, f"BUILTIN_{builtin}"))
    used = set()
    for index in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(index)
        for position in range(subgraph.OperatorsLength()):
            used.add(names[subgraph.Operators(position).OpcodeIndex()])
    return used


def audit_ops(model_bytes: bytes) -> set[str]:
    """`tflite_ops`, after checking that each is a builtin or one of TFTEXT_OPS; raises
    ExportError naming the others (Flex ops need the TF Select runtime, other custom ops a
    kernel of their own, and neither is on a phone with LiteRT and TF Text)."""
    schema = _schema()
    builtins = {name for name in vars(schema.BuiltinOperator)
                if not name.startswith("_") and name != "CUSTOM"}
    ops = tflite_ops(model_bytes)
    foreign = sorted(ops - builtins - TFTEXT_OPS)
    if foreign:
        raise ExportError(f"the TFLite model uses ops outside the LiteRT builtins and the TF "
                          f"Text tokenizer ops: {', '.join(foreign)}")
    return ops


def weight_bytes(model_bytes: bytes) -> dict[str, int]:
    """Bytes of constant data per tensor type ("FLOAT32", "INT8", "FLOAT16", ...), each buffer
    counted once. The tokenizer models are the "UINT8" part."""
    schema, model = _read_model(model_bytes)
    type_names = {code: name for name, code in vars(schema.TensorType).items()
                  if not name.startswith("_")}
    sizes: dict[str, int] = collections.Counter()
    seen = set()
    for index in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(index)
        for position in range(subgraph.TensorsLength()):
            tensor = subgraph.Tensors(position)
            buffer = model.Buffers(tensor.Buffer())
            if tensor.Buffer() in seen or buffer is None:
                continue
            size = buffer.DataLength() or buffer.Size()  # inline data, or stored past the end
            if size:
                seen.add(tensor.Buffer())
                sizes[type_names.get(tensor.Type(), str(tensor.Type()))] += size
    return dict(sizes)
