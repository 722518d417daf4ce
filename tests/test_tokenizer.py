"""Tests for nlpapps.tokenizer: Python and in-graph SentencePiece, SavedModel and LiteRT."""

import io
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm
import tensorflow as tf
import tensorflow_text as tf_text
from ai_edge_litert.interpreter import InterpreterWithCustomOps

from nlpapps.graph_tokenizer import GraphTokenizer
from nlpapps.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Tokenizer

FIXTURES = Path(__file__).parent / "fixtures"

BAD_INPUTS = [
    "",
    "  \t  ",
    "中文",  # a script absent from the training text
    "emoji 😀😀 here",
    b"Who\xff\xfe is there",  # invalid UTF-8
    b"cut \xe2\x96",  # truncated multi-byte character
    "lone \udcff surrogate",
    "nul\x00byte",
]


def plays(split: str) -> str:
    return (FIXTURES / "shakespeare" / f"{split}.txt").read_text(encoding="utf-8")


def speeches(text: str) -> list[str]:
    """Canonical play text cut into speeches, each with its trailing blank line."""
    return [speech + "\n\n" for speech in text.strip("\n").split("\n\n")]


def pair_sentences() -> list[str]:
    rows = (FIXTURES / "pairs.en-de.tsv").read_text(encoding="utf-8").splitlines()
    english = [row.split("\t")[0] for row in rows]
    german = [row.split("\t")[1] for row in rows]
    return english + german


def as_bytes(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")


def reference(tokenizer: Tokenizer) -> spm.SentencePieceProcessor:
    return spm.SentencePieceProcessor(model_proto=tokenizer.to_bytes())


@pytest.fixture(scope="module")
def plays_tokenizer() -> Tokenizer:
    return Tokenizer.train([plays("train")], 300, keep_newlines=True, num_threads=1)


@pytest.fixture(scope="module")
def pairs_tokenizer() -> Tokenizer:
    return Tokenizer.train(pair_sentences(), 400, num_threads=1)


@pytest.mark.parametrize("model_type", ["unigram", "bpe", "char"])
def test_special_ids_are_fixed(model_type):
    tokenizer = Tokenizer.train(pair_sentences(), 300, model_type=model_type, num_threads=1)
    pieces = [tokenizer.id_to_piece(i) for i in (PAD_ID, UNK_ID, BOS_ID, EOS_ID)]
    assert pieces == ["<pad>", "<unk>", "<s>", "</s>"]
    assert (PAD_ID, UNK_ID, BOS_ID, EOS_ID) == (0, 1, 2, 3)
    ids = tokenizer.encode("We all make mistakes.", add_bos=True, add_eos=True)
    assert ids[0] == BOS_ID and ids[-1] == EOS_ID
    assert all(i > EOS_ID for i in ids[1:-1])
    assert tokenizer.model_type == model_type
    assert tokenizer.newline_id is None


def test_rejects_a_model_with_other_special_ids():
    writer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(pair_sentences()), model_writer=writer, vocab_size=200,
        hard_vocab_limit=False, minloglevel=2)  # SentencePiece defaults: unk 0, bos 1, eos 2
    with pytest.raises(ValueError, match="special ids"):
        Tokenizer.from_bytes(writer.getvalue())


def test_save_load_round_trip(plays_tokenizer, tmp_path):
    path = tmp_path / "tokenizer.model"
    plays_tokenizer.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["tokenizer.model"]
    loaded = Tokenizer.load(path)
    text = plays("dev")
    assert loaded.to_bytes() == plays_tokenizer.to_bytes() == path.read_bytes()
    assert loaded.encode(text) == plays_tokenizer.encode(text)
    assert loaded.vocab_size == plays_tokenizer.vocab_size
    # The file is a plain SentencePiece model.
    assert spm.SentencePieceProcessor(model_file=str(path)).encode(text) == loaded.encode(text)


@pytest.mark.parametrize("corpus", ["plays", "pairs"])
@pytest.mark.parametrize("model_type", ["unigram", "char"])
def test_graph_ids_equal_sentencepiece(corpus, model_type):
    if corpus == "plays":
        tokenizer = Tokenizer.train([plays("train")], 300, model_type=model_type,
                                    keep_newlines=True, num_threads=1)
        texts = speeches(plays("dev")) + speeches(plays("test"))
    else:
        tokenizer = Tokenizer.train(pair_sentences()[::2], 300, model_type=model_type,
                                    num_threads=1)
        texts = pair_sentences()
    expected = reference(tokenizer).encode(texts)
    assert sum(UNK_ID in ids for ids in expected) < len(texts)  # mostly known text
    assert tokenizer.encode(texts) == expected
    assert GraphTokenizer(tokenizer).tokenize(tf.constant(texts)).to_list() == expected


def test_newlines_round_trip(plays_tokenizer):
    text = plays("dev") + "  indented\n\n\nthree blank lines \n"
    ids = plays_tokenizer.encode(text)
    assert ids.count(plays_tokenizer.newline_id) == text.count("\n")
    assert plays_tokenizer.decode(ids) == text
    assert reference(plays_tokenizer).decode(ids) == text
    graph = GraphTokenizer(plays_tokenizer)
    assert graph.detokenize(graph.tokenize([text])).numpy()[0].decode() == text


def test_without_keep_newlines_whitespace_collapses(pairs_tokenizer):
    assert pairs_tokenizer.encode("We all\n\tmake  mistakes.") == pairs_tokenizer.encode(
        "We all make mistakes.")
    assert pairs_tokenizer.decode(pairs_tokenizer.encode(" a \n b ")) == "a b"


def test_decode_inverts_encode_on_normalized_text(pairs_tokenizer):
    texts = [t for t in pair_sentences() if unicodedata.normalize("NFKC", t) == t]
    assert len(texts) > 900
    assert pairs_tokenizer.decode(pairs_tokenizer.encode(texts)) == texts


@pytest.mark.parametrize("keep_newlines", [False, True])
def test_bad_input_gives_defined_ids_in_python_and_graph(keep_newlines, plays_tokenizer,
                                                         pairs_tokenizer):
    tokenizer = plays_tokenizer if keep_newlines else pairs_tokenizer
    ids = tokenizer.encode(BAD_INPUTS)
    graph_ids = GraphTokenizer(tokenizer).tokenize(
        tf.constant([as_bytes(t) for t in BAD_INPUTS])).to_list()
    assert graph_ids == ids
    by_input = dict(zip(map(as_bytes, BAD_INPUTS), ids))
    assert by_input[b""] == []
    if not keep_newlines:
        assert by_input[b"  \t  "] == []
    assert by_input["中文".encode()].count(UNK_ID) == 1  # one unk per unknown run
    assert by_input["emoji 😀😀 here".encode()].count(UNK_ID) == 1
    for text in (b"Who\xff\xfe is there", b"cut \xe2\x96", as_bytes("lone \udcff surrogate"),
                 b"nul\x00byte"):
        assert by_input[text].count(UNK_ID) == 1
    assert all(0 <= i < tokenizer.vocab_size for row in ids for i in row)
    assert tokenizer.encode("", add_bos=True, add_eos=True) == [BOS_ID, EOS_ID]
    assert tokenizer.decode(tokenizer.encode("中文")) == " ⁇ "


def test_long_text_and_max_length(pairs_tokenizer):
    text = "We all make mistakes. " * 50_000  # 1.1M characters
    graph = GraphTokenizer(pairs_tokenizer)
    full = pairs_tokenizer.encode(text)
    assert graph.tokenize([text]).to_list() == [full]
    cut = pairs_tokenizer.encode(text, add_bos=True, add_eos=True, max_length=16)
    assert cut == [BOS_ID] + full[:14] + [EOS_ID]
    assert graph.tokenize([text], add_bos=True, add_eos=True, max_length=16).to_list() == [cut]
    with pytest.raises(ValueError, match="max_length"):
        pairs_tokenizer.encode(text, add_bos=True, add_eos=True, max_length=2)


@pytest.mark.parametrize("add_bos, add_eos, max_length",
                         [(True, False, None), (False, True, None), (True, True, 5),
                          (False, False, 3), (False, True, 2)])
def test_graph_options_match_encode(pairs_tokenizer, add_bos, add_eos, max_length):
    texts = ["", "We all make mistakes.", "中文", "Jeder kann sich mal irren.", "a"]
    options = dict(add_bos=add_bos, add_eos=add_eos, max_length=max_length)
    graph_ids = GraphTokenizer(pairs_tokenizer).tokenize(tf.constant(texts), **options)
    assert graph_ids.dtype == tf.int32
    assert graph_ids.to_list() == pairs_tokenizer.encode(texts, **options)


def test_decode_maps_bad_ids_to_unk_and_skips_specials(plays_tokenizer):
    size = plays_tokenizer.vocab_size
    rng = np.random.default_rng(0)
    rows = [rng.integers(-3, size + 3, size=rng.integers(0, 12)).tolist() for _ in range(200)]
    rows.append([BOS_ID, -5, 40, size + 10, EOS_ID, PAD_ID])
    texts = plays_tokenizer.decode(rows)
    assert "⁇" in texts[-1] and texts[-1] == plays_tokenizer.decode([1, 40, 1])
    graph = GraphTokenizer(plays_tokenizer)
    assert [t.decode() for t in graph.detokenize(tf.ragged.constant(rows)).numpy()] == texts
    padded = tf.ragged.constant(rows).to_tensor(PAD_ID)  # (batch, length), padded with pad
    assert [t.decode() for t in graph.detokenize(padded).numpy()] == texts
    assert plays_tokenizer.decode(padded.numpy()) == texts


def test_graph_refuses_bpe_and_byte_fallback():
    with pytest.raises(ValueError, match="type"):
        GraphTokenizer(Tokenizer.train(pair_sentences(), 300, model_type="bpe", num_threads=1))
    tokenizer = Tokenizer.train(pair_sentences(), 400, byte_fallback=True, num_threads=1)
    ids = tokenizer.encode("中")
    assert UNK_ID not in ids and tokenizer.decode(ids) == "中"  # spelled as UTF-8 bytes
    with pytest.raises(ValueError, match="byte_fallback"):
        GraphTokenizer(tokenizer)


def test_rejects_bad_training_options():
    with pytest.raises(ValueError, match="model_type"):
        Tokenizer.train(["a b"], 100, model_type="word")
    with pytest.raises(ValueError, match="normalization_rule_name"):
        Tokenizer.train(["a b"], 100, normalization_rule_name="identity")
    for texts in ([], [""], ["  \n\t\n"], iter(["", " "])):
        with pytest.raises(ValueError, match="no text to train a tokenizer on"):
            Tokenizer.train(texts, 100)


def test_training_skips_leading_blank_lines():
    tokenizer = Tokenizer.train(iter(["", "   ", "the cat sat on the mat"]), 30, num_threads=1)
    assert tokenizer.decode(tokenizer.encode("the cat")) == "the cat"


def test_savedmodel_round_trip(plays_tokenizer, tmp_path):
    module = tf.Module()
    module.tokenizer = GraphTokenizer(plays_tokenizer)
    module.tokenize = tf.function(
        lambda s: module.tokenizer.tokenize(s, add_eos=True),
        input_signature=[tf.TensorSpec([None], tf.string)])
    module.detokenize = tf.function(
        module.tokenizer.detokenize, input_signature=[tf.TensorSpec([None, None], tf.int32)])
    tf.saved_model.save(module, str(tmp_path / "saved"))
    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    texts = speeches(plays("test"))[:5]
    ids = loaded.tokenize(tf.constant(texts))
    assert ids.to_list() == plays_tokenizer.encode(texts, add_eos=True)
    assert [t.decode() for t in loaded.detokenize(ids.to_tensor()).numpy()] == texts


def run_litert(function, value: np.ndarray) -> np.ndarray:
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [function.get_concrete_function()], function)
    converter.allow_custom_ops = True  # only the TF Text ops: no TF Select
    interpreter = InterpreterWithCustomOps(
        custom_op_registerers=tf_text.tflite_registrar.SELECT_TFTEXT_OPS,
        model_content=converter.convert())
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], value)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def test_litert_matches_python(plays_tokenizer):
    graph = GraphTokenizer(plays_tokenizer)
    text = "FRANCISCO:\nNay, answer me: stand, and unfold yourself.\n\n中"
    expected = plays_tokenizer.encode(text, add_eos=True, max_length=12)

    @tf.function(input_signature=[tf.TensorSpec([1], tf.string)])
    def tokenize(strings):
        return graph.tokenize(strings, add_eos=True, max_length=12).flat_values  # (tokens,)

    @tf.function(input_signature=[tf.TensorSpec([1, 12], tf.int32)])
    def detokenize(ids):
        return graph.detokenize(ids)  # (1,)

    ids = run_litert(tokenize, np.array([text.encode()]))
    assert ids.tolist() == expected
    padded = np.pad(ids, (0, 12 - len(ids)))[np.newaxis].astype(np.int32)  # (1, 12)
    decoded = run_litert(detokenize, padded)
    assert decoded[0].decode() == plays_tokenizer.decode(expected)


def test_line_start_graph_ids_equal_sentencepiece_after_a_line_break(plays_tokenizer):
    # The reference: Python SentencePiece on "\n" + text, the ids of "\n" dropped, which is
    # what a line has inside a longer text.
    processor = reference(plays_tokenizer)
    skip = len(processor.encode("\n"))
    lines = plays("test").splitlines() + ["  two leading spaces", " x", "trailing  ", "a\nb",
                                          "\n\n", "ROMEO:\n", "", "\tTab"]
    expected = [processor.encode("\n" + line)[skip:] for line in lines]
    graph = GraphTokenizer(plays_tokenizer, line_start=True)
    assert graph.tokenize(tf.constant(lines)).to_list() == expected
    # Without line_start the first piece carries SentencePiece's word boundary.
    plain = GraphTokenizer(plays_tokenizer).tokenize(tf.constant(["ROMEO:"])).to_list()[0]
    line_start = graph.tokenize(tf.constant(["ROMEO:"])).to_list()[0]
    assert plain == processor.encode("ROMEO:") and plain != line_start


def test_sampled_segmentations_decode_to_the_text_and_vary(pairs_tokenizer):
    texts = pair_sentences()[:200]
    best = pairs_tokenizer.encode(texts)
    spm.set_random_generator_seed(5)
    first = pairs_tokenizer.encode(texts, alpha=0.3)
    assert pairs_tokenizer.decode(first) == pairs_tokenizer.decode(best)
    assert sum(a != b for a, b in zip(first, best)) > 100  # most texts split otherwise
    assert pairs_tokenizer.encode(texts, alpha=0.3) == first  # the seed fixes the draws
    spm.set_random_generator_seed(6)
    assert pairs_tokenizer.encode(texts, alpha=0.3) != first
    # The smaller alpha, the flatter the distribution: more, shorter pieces.
    pieces = [sum(map(len, pairs_tokenizer.encode(texts, alpha=a))) for a in (1.0, 0.1)]
    assert sum(map(len, best)) <= pieces[0] < pieces[1]


def test_sampling_keeps_bos_eos_and_max_length(pairs_tokenizer):
    text = pair_sentences()[0] * 5
    ids = pairs_tokenizer.encode(text, add_bos=True, add_eos=True, max_length=12, alpha=0.1)
    assert len(ids) == 12 and ids[0] == BOS_ID and ids[-1] == EOS_ID


@pytest.mark.parametrize("model_type, alpha", [("unigram", -0.1), ("unigram", 1.5),
                                               ("char", 0.5)])
def test_sampling_needs_a_unigram_model_and_alpha_in_range(pairs_tokenizer, model_type, alpha):
    tokenizer = pairs_tokenizer if model_type == "unigram" else Tokenizer.train(
        pair_sentences(), 100, model_type=model_type, num_threads=1)
    with pytest.raises(ValueError, match="subword sampling needs a unigram model"):
        tokenizer.encode("Hello", alpha=alpha)
