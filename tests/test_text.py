"""minidl.data.text against Keras's documented rules. Keras is not installed, so every expected
value below is derived by hand from those rules, worked through in the comments:

* text is lower-cased, the filter characters become separators, empty pieces are dropped;
* index 1 is the most frequent token, ties broken by first appearance, index 0 is never used;
* ``oov_token`` takes index 1 and replaces unknown (or beyond-``num_words``) tokens;
* ``num_words=n`` keeps indices ``< n`` when converting;
* ``pad_sequences`` pads and truncates at the start by default, with 0, to the longest length.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from minidl.data.text import Tokenizer, pad_sequences, text_to_word_sequence, tokenizer_from_json

TEXTS = ["The cat sat on the mat.", "The dog ate my homework!", "My cat ate the dog's food"]
# Tokens in order of appearance, with counts:
#   text 1: the cat sat on the mat        text 2: the dog ate my homework
#   text 3: my cat ate the dog's food     (the apostrophe is not a filter character)
#   the 4 | cat 2 | sat 1 | on 1 | mat 1 | dog 1 | ate 2 | my 2 | homework 1 | dog's 1 | food 1
# Sorted by count, ties in order of first appearance:
WORD_INDEX = {
    "the": 1,
    "cat": 2,
    "ate": 3,
    "my": 4,
    "sat": 5,
    "on": 6,
    "mat": 7,
    "dog": 8,
    "homework": 9,
    "dog's": 10,
    "food": 11,
}


def fitted(**kwargs) -> Tokenizer:
    tok = Tokenizer(**kwargs)
    tok.fit_on_texts(TEXTS)
    return tok


def test_text_to_word_sequence_lowercases_filters_and_splits():
    assert text_to_word_sequence("Hello, World!!  Don't\tstop\n") == ["hello", "world", "don't", "stop"]
    assert text_to_word_sequence("A-B c", filters="", lower=False) == ["A-B", "c"]
    assert text_to_word_sequence("a,b;c", filters=";", split=",") == ["a", "b", "c"]


def test_fit_on_texts_builds_keras_indices_and_counts():
    tok = fitted()
    assert tok.word_index == WORD_INDEX
    assert tok.index_word == {i: w for w, i in WORD_INDEX.items()}
    assert list(tok.word_counts.items())[:4] == [("the", 4), ("cat", 2), ("sat", 1), ("on", 1)]
    assert tok.word_counts["ate"] == 2 and tok.document_count == 3
    # word_docs: texts containing the word (the appears in all three, twice in text 1)
    assert tok.word_docs["the"] == 3 and tok.word_docs["cat"] == 2 and tok.word_docs["food"] == 1
    assert tok.index_docs[1] == 3 and tok.index_docs[2] == 2 and tok.index_docs[11] == 1


def test_fitting_again_adds_to_the_counts():
    tok = fitted()
    tok.fit_on_texts(["food food food food food"])
    # food: 1 + 5 = 6 now leads; the (4) second; the rest keep their relative order
    assert tok.word_index["food"] == 1 and tok.word_index["the"] == 2 and tok.word_index["cat"] == 3
    assert tok.document_count == 4 and tok.word_docs["food"] == 2


def test_texts_to_sequences_drops_unknown_words_without_oov():
    tok = fitted()
    assert tok.texts_to_sequences(["the cat ate my FOOD", "a new cat", ""]) == [[1, 2, 3, 4, 11], [2], []]


def test_num_words_keeps_indices_below_it():
    tok = fitted(num_words=4)  # keeps 1, 2, 3: the, cat, ate
    assert tok.word_index == WORD_INDEX  # the vocabulary itself is complete
    assert tok.texts_to_sequences(["the cat ate my food"]) == [[1, 2, 3]]
    assert tok.sequences_to_texts([[1, 2, 3, 4, 11]]) == ["the cat ate"]


def test_oov_token_takes_index_one_and_replaces_unknown_words():
    tok = fitted(oov_token="<OOV>")
    # every word moves up by one
    assert tok.word_index == {"<OOV>": 1, **{w: i + 1 for w, i in WORD_INDEX.items()}}
    assert tok.texts_to_sequences(["a new cat"]) == [[1, 1, 3]]
    assert tok.sequences_to_texts([[2, 3, 1, 99]]) == ["the cat <OOV> <OOV>"]
    limited = fitted(oov_token="<OOV>", num_words=4)  # keeps <OOV>, the, cat; ate (4) is out
    assert limited.texts_to_sequences(["the cat ate my food"]) == [[2, 3, 1, 1, 1]]
    assert limited.sequences_to_texts([[2, 3, 4]]) == ["the cat <OOV>"]


def test_oov_token_keeps_index_one_even_if_it_occurs_in_the_texts():
    tok = Tokenizer(oov_token="unk", filters="")
    tok.fit_on_texts(["unk unk unk a", "a b"])
    assert tok.word_index == {"unk": 1, "a": 2, "b": 3}


def test_char_level_and_token_lists():
    tok = Tokenizer(char_level=True)
    tok.fit_on_texts(["abca", "Bd!"])  # a 2, b 2, c 1, d 1, ! 1: no filtering at character level
    assert tok.word_index == {"a": 1, "b": 2, "c": 3, "d": 4, "!": 5}
    assert tok.texts_to_sequences(["dab?"]) == [[4, 1, 2]]
    assert tok.sequences_to_texts([[4, 1]]) == ["d a"]  # joined with spaces, as Keras
    words = Tokenizer()
    words.fit_on_texts([["Hello", "world"], ["hello", "there", "hello"]])  # lists are used as is, lowered
    assert words.word_index == {"hello": 1, "world": 2, "there": 3}
    assert words.texts_to_sequences([["HELLO", "there", "x"]]) == [[1, 3]]
    custom = Tokenizer(analyzer=lambda s: s.split("|"))
    custom.fit_on_texts(["x|y|x"])
    assert custom.word_index == {"x": 1, "y": 2}


def test_texts_to_matrix_modes_by_hand():
    tok = fitted()
    text = ["the the cat zebra"]  # the: 2, cat: 1 (zebra unknown: dropped before counting)
    width = len(WORD_INDEX) + 1
    binary = np.zeros((1, width))
    binary[0, [1, 2]] = 1
    np.testing.assert_array_equal(tok.texts_to_matrix(text, "binary"), binary)
    count = np.zeros((1, width))
    count[0, 1], count[0, 2] = 2, 1
    np.testing.assert_array_equal(tok.texts_to_matrix(text, "count"), count)
    np.testing.assert_allclose(tok.texts_to_matrix(text, "freq"), count / 3)  # 3 known tokens
    # tfidf: (1 + ln c) * ln(1 + N / (1 + docs)) with N = 3 texts; "the" in 3 texts, "cat" in 2
    tfidf = np.zeros((1, width))
    tfidf[0, 1] = (1 + math.log(2)) * math.log(1 + 3 / 4)
    tfidf[0, 2] = 1 * math.log(1 + 3 / 3)
    np.testing.assert_allclose(tok.texts_to_matrix(text, "tfidf"), tfidf)
    limited = fitted(num_words=3)
    assert limited.texts_to_matrix(["ate cat the"], "count").tolist() == [[0, 1, 1]]
    assert tok.texts_to_matrix(text).dtype == np.float64
    assert tok.sequences_to_matrix([[], [11, 11]], "count")[1, 11] == 2


def test_matrix_errors():
    with pytest.raises(ValueError, match="unknown vectorization mode 'tf'"):
        fitted().texts_to_matrix(["the"], mode="tf")
    with pytest.raises(ValueError, match="fit on some text"):
        Tokenizer().sequences_to_matrix([[1]])
    with pytest.raises(ValueError, match="tfidf"):
        Tokenizer(num_words=5).sequences_to_matrix([[1]], mode="tfidf")
    with pytest.raises(TypeError, match="single str"):
        Tokenizer().fit_on_texts("just one text")


def test_fit_on_sequences_counts_documents_for_tfidf():
    tok = Tokenizer(num_words=4)
    tok.fit_on_sequences([[1, 1, 2], [2, 3]])
    assert tok.document_count == 2 and tok.index_docs == {1: 1, 2: 2, 3: 1}
    # index 2: c = 1, in 2 of 2 documents -> ln(1 + 2 / 3)
    np.testing.assert_allclose(tok.sequences_to_matrix([[2]], "tfidf")[0, 2], math.log(1 + 2 / 3))


def test_json_round_trip_and_keras_layout():
    tok = fitted(oov_token="<OOV>", num_words=6)
    data = json.loads(tok.to_json())
    assert data["class_name"] == "Tokenizer"
    config = data["config"]
    # Keras stores the tables as JSON strings inside the config
    assert json.loads(config["word_index"])["the"] == 2 and json.loads(config["index_word"])["2"] == "the"
    assert config["num_words"] == 6 and config["oov_token"] == "<OOV>" and config["document_count"] == 3
    back = tokenizer_from_json(tok.to_json())
    assert back.word_index == tok.word_index and back.index_word == tok.index_word
    assert back.word_counts == tok.word_counts and list(back.word_counts) == list(tok.word_counts)
    assert back.index_docs == tok.index_docs and back.document_count == 3
    probe = ["The dog ate a shoe", "my mat"]
    assert back.texts_to_sequences(probe) == tok.texts_to_sequences(probe)
    # fitting continues where the saved counts left off
    back.fit_on_texts(["zebra"])
    assert back.word_counts["the"] == 4 and back.document_count == 4
    with pytest.raises(ValueError, match="not a tokenizer"):
        tokenizer_from_json('{"config": {}}')


def test_loads_a_keras_written_config():
    """A config in the layout Keras's Tokenizer.to_json writes (tables as JSON strings)."""
    keras_json = json.dumps(
        {
            "class_name": "Tokenizer",
            "config": {
                "num_words": None,
                "filters": '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n',
                "lower": True,
                "split": " ",
                "char_level": False,
                "oov_token": None,
                "document_count": 2,
                "word_counts": json.dumps({"hi": 2, "there": 1}),
                "word_docs": json.dumps({"hi": 2, "there": 1}),
                "index_docs": json.dumps({"1": 2, "2": 1}),
                "index_word": json.dumps({"1": "hi", "2": "there"}),
                "word_index": json.dumps({"hi": 1, "there": 2}),
            },
        }
    )
    tok = tokenizer_from_json(keras_json)
    assert tok.texts_to_sequences(["Hi there, you"]) == [[1, 2]]
    assert tok.index_word[2] == "there" and tok.index_docs[1] == 2


# ---- pad_sequences ------------------------------------------------------------------------------------


def test_pad_sequences_defaults_pad_and_truncate_at_the_front():
    out = pad_sequences([[1, 2], [3, 4, 5, 6], []])
    assert out.dtype == np.int32
    assert out.tolist() == [[0, 0, 1, 2], [3, 4, 5, 6], [0, 0, 0, 0]]
    assert pad_sequences([[1, 2], [3, 4, 5, 6]], maxlen=3).tolist() == [[0, 1, 2], [4, 5, 6]]


def test_pad_sequences_options():
    seqs = [[1, 2], [3, 4, 5, 6]]
    assert pad_sequences(seqs, maxlen=3, truncating="post").tolist() == [[0, 1, 2], [3, 4, 5]]
    assert pad_sequences(seqs, maxlen=3, padding="post").tolist() == [[1, 2, 0], [4, 5, 6]]
    assert pad_sequences(seqs, maxlen=5, padding="post", value=-1).tolist() == [[1, 2, -1, -1, -1], [3, 4, 5, 6, -1]]
    floats = pad_sequences([[0.5], [1.5, 2.5]], dtype="float32", value=0.25)
    assert floats.dtype == np.float32 and floats.tolist() == [[0.25, 0.5], [1.5, 2.5]]
    # value 0.0 cast to the integer dtype; floats in the data are truncated by the int cast, as Keras
    assert pad_sequences([[1.7]], maxlen=2).tolist() == [[0, 1]]
    assert pad_sequences([[1, 2]], maxlen=0).shape == (1, 0)
    assert pad_sequences([]).shape == (0, 0)
    assert pad_sequences(np.array([[1, 2, 3]]), maxlen=2).tolist() == [[2, 3]]


def test_pad_sequences_of_vectors_and_strings():
    seqs = [np.ones((1, 2)), np.arange(6).reshape(3, 2)]
    out = pad_sequences(seqs, dtype="float64")
    assert out.shape == (2, 3, 2)
    np.testing.assert_array_equal(out[0], [[0, 0], [0, 0], [1, 1]])
    np.testing.assert_array_equal(out[1], np.arange(6).reshape(3, 2))
    words = pad_sequences([["a"], ["b", "c"]], dtype=object, value="<pad>")
    assert words.tolist() == [["<pad>", "a"], ["b", "c"]]


def test_pad_sequences_errors():
    with pytest.raises(ValueError, match="padding must be 'pre' or 'post'"):
        pad_sequences([[1]], padding="middle")
    with pytest.raises(ValueError, match="truncating"):
        pad_sequences([[1]], truncating="left")
    with pytest.raises(ValueError, match="entry 1 is a int"):
        pad_sequences([[1], 2])
    with pytest.raises(ValueError, match="dtype=object"):
        pad_sequences([[1]], value="x")
    with pytest.raises(ValueError, match=r"sequence 1 have shape \(3,\)"):
        pad_sequences([np.ones((2, 2)), np.ones((2, 3))])
