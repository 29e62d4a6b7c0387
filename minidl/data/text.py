"""Text to integers, the Keras way: ``Tokenizer``, ``pad_sequences`` and ``text_to_word_sequence``.

A network reads numbers, so text is first cut into *tokens* (words, or characters) and each
token replaced by its index in a vocabulary::

    "The cat sat on the mat."  --lower, strip punctuation, split-->  the cat sat on the mat
                               --word_index-->                       [1, 2, 3, 4, 1, 5]

``Tokenizer.fit_on_texts`` builds the vocabulary by counting: index 1 is the most frequent
token, 2 the next, and so on; tokens with equal counts keep the order in which they first
appeared. Index 0 is never given to a token -- it is reserved for padding. With
``oov_token`` set, that token takes index 1 and stands in for every out-of-vocabulary word;
without it, unknown words are dropped. ``num_words=n`` keeps only the tokens with index below
``n`` (the ``n - 1`` most frequent) when converting, though ``word_index`` keeps them all.

Sequences of different lengths cannot be stacked into a batch, so ``pad_sequences`` makes them
one length: shorter ones are filled with ``value`` (0), longer ones cut, at the start
(``'pre'``, the default, which keeps the end of a text next to where a recurrent network reads
last) or the end (``'post'``).

Everything here follows Keras 2's ``keras.preprocessing.text`` and ``pad_sequences``, and
``to_json`` writes Keras's JSON layout, so a tokenizer saved by either loads in the other.
Results are NumPy arrays, as in Keras; wrap them with ``minidl.tensor`` (or ``TensorDataset``).
"""

from __future__ import annotations

import json
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

__all__ = ["Tokenizer", "tokenizer_from_json", "pad_sequences", "text_to_word_sequence"]

DEFAULT_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'

_MODES = ("binary", "count", "tfidf", "freq")


def text_to_word_sequence(
    input_text: str, filters: str = DEFAULT_FILTERS, lower: bool = True, split: str = " "
) -> list[str]:
    """Lower-case ``input_text`` (if ``lower``), turn every character of ``filters`` into the
    separator ``split``, cut on it and drop empty pieces: ``"Hello, world!" -> ["hello", "world"]``."""
    if lower:
        input_text = input_text.lower()
    input_text = input_text.translate(str.maketrans({c: split for c in filters}))
    return [w for w in input_text.split(split) if w]


class Tokenizer:
    """A vocabulary learned from texts, and conversions between texts, index sequences and
    bag-of-words matrices (Keras's ``Tokenizer``).

    Attributes after ``fit_on_texts``: ``word_counts`` (token -> occurrences, in order of first
    appearance), ``word_docs`` (token -> number of texts containing it), ``word_index`` (token
    -> index, from 1), ``index_word`` (its inverse), ``index_docs`` (index -> number of texts)
    and ``document_count`` (texts seen).

    A text may also be given as a list of tokens, which is used as is (lower-cased if ``lower``);
    with ``char_level=True`` every character is a token. ``analyzer``, if given, replaces the
    built-in splitting for string texts.
    """

    def __init__(
        self,
        num_words: int | None = None,
        filters: str = DEFAULT_FILTERS,
        lower: bool = True,
        split: str = " ",
        char_level: bool = False,
        oov_token: str | None = None,
        analyzer: Callable[[str], list[str]] | None = None,
        *,
        document_count: int = 0,
    ) -> None:
        if num_words is not None and (not isinstance(num_words, int) or isinstance(num_words, bool) or num_words < 0):
            raise ValueError(f"Tokenizer: num_words must be a non-negative int or None, got {num_words!r}")
        self.num_words = num_words
        self.filters = filters
        self.lower = lower
        self.split = split
        self.char_level = char_level
        self.oov_token = oov_token
        self.analyzer = analyzer
        self.document_count = document_count
        self.word_counts: OrderedDict[str, int] = OrderedDict()
        self.word_docs: defaultdict[str, int] = defaultdict(int)
        self.index_docs: defaultdict[int, int] = defaultdict(int)
        self.word_index: dict[str, int] = {}
        self.index_word: dict[int, str] = {}

    # ---- tokenizing ---------------------------------------------------------------------------

    def _tokens(self, text: str | list[str]) -> list[str]:
        if isinstance(text, (list, tuple)):
            return [t.lower() for t in text] if self.lower else list(text)
        if not isinstance(text, str):
            raise TypeError(
                f"Tokenizer: each text must be a str or a list of tokens, got {type(text).__name__} "
                "(pass a list of texts, not a single text)"
            )
        if self.char_level:
            return list(text.lower() if self.lower else text)
        if self.analyzer is not None:
            return self.analyzer(text)
        return text_to_word_sequence(text, self.filters, self.lower, self.split)

    @staticmethod
    def _check_texts(texts: Any, method: str) -> None:
        if isinstance(texts, str):
            raise TypeError(f"Tokenizer.{method}: expected a list of texts, got a single str; wrap it: [text]")

    # ---- learning the vocabulary ---------------------------------------------------------------

    def fit_on_texts(self, texts: Iterable[str | list[str]]) -> None:
        """Count the tokens of ``texts`` (adding to earlier counts) and rebuild the indices."""
        self._check_texts(texts, "fit_on_texts")
        for text in texts:
            self.document_count += 1
            seq = self._tokens(text)
            for w in seq:
                self.word_counts[w] = self.word_counts.get(w, 0) + 1
            for w in set(seq):
                self.word_docs[w] += 1
        # A stable sort by count: tokens with equal counts keep their order of first appearance.
        ranked = sorted(self.word_counts.items(), key=lambda wc: wc[1], reverse=True)
        vocab = [] if self.oov_token is None else [self.oov_token]
        # The OOV token keeps index 1 even if it also occurs in the texts (Keras would give it
        # a second, later index there).
        vocab.extend(w for w, _ in ranked if w != self.oov_token)
        self.word_index = {w: i for i, w in enumerate(vocab, start=1)}
        self.index_word = {i: w for w, i in self.word_index.items()}
        self.index_docs = defaultdict(int)
        for w, c in self.word_docs.items():
            if w in self.word_index:
                self.index_docs[self.word_index[w]] = c

    def fit_on_sequences(self, sequences: Iterable[Sequence[int]]) -> None:
        """Count, for ``tfidf`` matrices, in how many sequences each index occurs (when the
        vocabulary came from elsewhere and only index sequences are at hand)."""
        sequences = list(sequences)
        self.document_count += len(sequences)
        for seq in sequences:
            for i in set(seq):
                self.index_docs[i] += 1

    # ---- converting ---------------------------------------------------------------------------

    def texts_to_sequences(self, texts: Iterable[str | list[str]]) -> list[list[int]]:
        """Each text as the list of its tokens' indices (see the module docstring for
        ``num_words`` and ``oov_token``)."""
        return list(self.texts_to_sequences_generator(texts))

    def texts_to_sequences_generator(self, texts: Iterable[str | list[str]]) -> Iterator[list[int]]:
        self._check_texts(texts, "texts_to_sequences")
        num_words = self.num_words
        oov = self.word_index.get(self.oov_token) if self.oov_token is not None else None
        for text in texts:
            vect = []
            for w in self._tokens(text):
                i = self.word_index.get(w)
                if i is not None and not (num_words and i >= num_words):
                    vect.append(i)
                elif oov is not None:  # unknown, or beyond num_words
                    vect.append(oov)
            yield vect

    def sequences_to_texts(self, sequences: Iterable[Sequence[int]]) -> list[str]:
        """Each index sequence back to a string of tokens joined by spaces; indices beyond
        ``num_words`` or unknown become the OOV token (or are dropped without one)."""
        return list(self.sequences_to_texts_generator(sequences))

    def sequences_to_texts_generator(self, sequences: Iterable[Sequence[int]]) -> Iterator[str]:
        num_words = self.num_words
        oov_word = self.oov_token if self.oov_token in self.word_index else None
        for seq in sequences:
            vect = []
            for num in seq:
                word = self.index_word.get(int(num))
                if word is not None and not (num_words and num >= num_words):
                    vect.append(word)
                elif oov_word is not None:
                    vect.append(oov_word)
            yield " ".join(vect)

    def texts_to_matrix(self, texts: Iterable[str | list[str]], mode: str = "binary") -> np.ndarray:
        """A ``len(texts) x num_words`` bag-of-words matrix (see ``sequences_to_matrix``)."""
        return self.sequences_to_matrix(self.texts_to_sequences(texts), mode=mode)

    def sequences_to_matrix(self, sequences: Sequence[Sequence[int]], mode: str = "binary") -> np.ndarray:
        """Row ``i``, column ``j``: how index ``j`` figures in sequence ``i``.

        ``binary``: 1 if present; ``count``: occurrences ``c``; ``freq``: ``c / len(sequence)``;
        ``tfidf``: ``(1 + log c) * log(1 + N / (1 + d_j))`` where ``N`` is ``document_count``
        and ``d_j`` the number of fitted texts containing ``j``. Column 0 (padding) stays 0 and
        indices ``>= num_words`` are ignored. The width is ``num_words``, or the vocabulary
        size + 1 when ``num_words`` is not set. float64, as Keras.
        """
        if mode not in _MODES:
            raise ValueError(f"Tokenizer: unknown vectorization mode {mode!r}; use one of {', '.join(_MODES)}")
        if self.num_words:
            width = self.num_words
        elif self.word_index:
            width = len(self.word_index) + 1
        else:
            raise ValueError("Tokenizer: specify a dimension (num_words), or fit on some text data first")
        if mode == "tfidf" and not self.document_count:
            raise ValueError("Tokenizer: fit the Tokenizer on some data before using tfidf mode")
        x = np.zeros((len(sequences), width))
        for i, seq in enumerate(sequences):
            if not len(seq):
                continue
            counts: dict[int, int] = defaultdict(int)
            for j in seq:
                if j < width:
                    counts[int(j)] += 1
            for j, c in counts.items():
                if mode == "count":
                    x[i, j] = c
                elif mode == "freq":
                    x[i, j] = c / len(seq)
                elif mode == "binary":
                    x[i, j] = 1
                else:
                    idf = np.log(1 + self.document_count / (1 + self.index_docs.get(j, 0)))
                    x[i, j] = (1 + np.log(c)) * idf
        return x

    # ---- saving ----------------------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """The settings and learned tables; the tables are JSON strings, as Keras stores them."""
        return {
            "num_words": self.num_words,
            "filters": self.filters,
            "lower": self.lower,
            "split": self.split,
            "char_level": self.char_level,
            "oov_token": self.oov_token,
            "document_count": self.document_count,
            "word_counts": json.dumps(self.word_counts),
            "word_docs": json.dumps(self.word_docs),
            "index_docs": json.dumps(self.index_docs),
            "index_word": json.dumps(self.index_word),
            "word_index": json.dumps(self.word_index),
        }

    def to_json(self, **kwargs: Any) -> str:
        """The tokenizer as a JSON string (Keras's layout; ``kwargs`` go to ``json.dumps``).
        Load it with ``tokenizer_from_json``. A custom ``analyzer`` is code and is not saved."""
        return json.dumps({"class_name": type(self).__name__, "config": self.get_config()}, **kwargs)


def tokenizer_from_json(json_string: str) -> Tokenizer:
    """A ``Tokenizer`` from ``Tokenizer.to_json`` (or from Keras's own ``to_json``)."""
    try:
        config = dict(json.loads(json_string)["config"])
        word_counts = json.loads(config.pop("word_counts"))
        word_docs = json.loads(config.pop("word_docs"))
        # JSON object keys are strings; the integer-keyed tables get their ints back.
        index_docs = {int(k): v for k, v in json.loads(config.pop("index_docs")).items()}
        index_word = {int(k): v for k, v in json.loads(config.pop("index_word")).items()}
        word_index = json.loads(config.pop("word_index"))
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"tokenizer_from_json: not a tokenizer saved with to_json ({err!r})") from None
    known = {"num_words", "filters", "lower", "split", "char_level", "oov_token", "document_count"}
    tokenizer = Tokenizer(**{k: v for k, v in config.items() if k in known})
    tokenizer.word_counts = OrderedDict(word_counts)
    tokenizer.word_docs = defaultdict(int, word_docs)
    tokenizer.index_docs = defaultdict(int, index_docs)
    tokenizer.word_index = word_index
    tokenizer.index_word = index_word
    return tokenizer


def pad_sequences(
    sequences: Sequence[Sequence[Any]],
    maxlen: int | None = None,
    dtype: Any = "int32",
    padding: str = "pre",
    truncating: str = "pre",
    value: Any = 0.0,
) -> np.ndarray:
    """A ``len(sequences) x maxlen`` array (Keras's ``pad_sequences``).

    ``maxlen`` defaults to the longest sequence. Shorter sequences are filled with ``value``
    before (``padding='pre'``) or after (``'post'``) their items; longer ones lose items from
    the start (``truncating='pre'``) or the end (``'post'``). Items may themselves be arrays of
    one common shape, which then trails: the result is ``len x maxlen x item_shape``.

        pad_sequences([[1, 2], [3, 4, 5, 6]], maxlen=3)  ->  [[0, 1, 2], [4, 5, 6]]
    """
    if padding not in ("pre", "post"):
        raise ValueError(f"pad_sequences: padding must be 'pre' or 'post', got {padding!r}")
    if truncating not in ("pre", "post"):
        raise ValueError(f"pad_sequences: truncating must be 'pre' or 'post', got {truncating!r}")
    if not hasattr(sequences, "__len__"):
        raise ValueError("pad_sequences: sequences must be a list (or array) of sequences")
    if maxlen is not None and (not isinstance(maxlen, (int, np.integer)) or maxlen < 0):
        raise ValueError(f"pad_sequences: maxlen must be a non-negative int or None, got {maxlen!r}")
    lengths, sample_shape = [], ()
    found_shape = False
    for i, s in enumerate(sequences):
        if not hasattr(s, "__len__"):
            raise ValueError(
                f"pad_sequences: sequences must be a list of iterables; entry {i} is a {type(s).__name__} ({s!r})"
            )
        lengths.append(len(s))
        if not found_shape and len(s):
            sample_shape = np.asarray(s).shape[1:]
            found_shape = True
    if maxlen is None:
        maxlen = max(lengths, default=0)
    is_str_dtype = np.issubdtype(np.dtype(dtype), np.str_)
    if isinstance(value, str) and np.dtype(dtype) != object and not is_str_dtype:
        raise ValueError(
            f"pad_sequences: dtype {dtype} is not compatible with value's type str; use dtype=object for "
            "variable-length strings"
        )
    x = np.full((len(sequences), maxlen) + sample_shape, value, dtype=dtype)
    if maxlen == 0:
        return x
    for i, s in enumerate(sequences):
        if not len(s):
            continue
        trunc = np.asarray(s[-maxlen:] if truncating == "pre" else s[:maxlen], dtype=dtype)
        if trunc.shape[1:] != sample_shape:
            raise ValueError(
                f"pad_sequences: items of sequence {i} have shape {trunc.shape[1:]}, but earlier items have shape "
                f"{sample_shape}"
            )
        if padding == "post":
            x[i, : len(trunc)] = trunc
        else:
            x[i, -len(trunc) :] = trunc
    return x
