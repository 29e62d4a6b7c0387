"""Classify short sentences by sentiment with an embedding and an LSTM (or a Transformer
encoder layer), using Keras-style text utilities.

    python examples/text_classification.py                     # LSTM
    python examples/text_classification.py --model transformer
    python examples/text_classification.py --small             # a few seconds

The data are generated: sentences such as "the movie was not good at all" or "honestly the
plot is great". The label is the sentiment of the adjective, flipped by a "not" before it,
so a bag of words cannot solve the task (the same words appear in both classes): the model
has to read the order. ``Tokenizer`` turns words into integer ids (1 for the most frequent
word, 0 reserved for padding), ``pad_sequences`` makes the batch rectangular.
"""

from __future__ import annotations

import argparse

import numpy as np

import minidl
import minidl.nn as nn
import minidl.nn.functional as F
from minidl.data import DataLoader, TensorDataset
from minidl.data.text import Tokenizer, pad_sequences

POSITIVE = ["good", "great", "wonderful", "excellent", "fun", "moving", "clever", "beautiful"]
NEGATIVE = ["bad", "boring", "awful", "dull", "terrible", "weak", "silly", "ugly"]
SUBJECTS = ["the movie", "the plot", "the acting", "this film", "the ending", "the music", "the story"]
VERBS = ["was", "is", "seemed", "felt"]
OPENERS = ["", "honestly", "overall", "i think", "to be fair"]
CLOSERS = ["", "at all", "really", "to me", "in the end", "for a sequel"]


def make_sentences(n: int, rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
    """``n`` sentences and their labels (1 positive, 0 negative)."""
    texts, labels = [], []
    for _ in range(n):
        positive = rng.random() < 0.5
        negated = rng.random() < 0.5
        adjective = rng.choice(POSITIVE if positive else NEGATIVE)
        words = [rng.choice(OPENERS), rng.choice(SUBJECTS), rng.choice(VERBS)]
        words += ["not", adjective] if negated else [adjective]
        words.append(rng.choice(CLOSERS))
        texts.append(" ".join(w for w in words if w))
        labels.append(int(positive != negated))
    return texts, np.array(labels, dtype=np.int64)


class LSTMClassifier(nn.Module):
    """Embedding -> LSTM -> the last hidden state -> a linear layer."""

    def __init__(self, vocab: int, dim: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim, padding_idx=0)
        self.lstm = nn.LSTM(dim, dim, batch_first=True)
        self.head = nn.Linear(dim, 2)

    def forward(self, tokens: minidl.Tensor) -> minidl.Tensor:
        _, (h, _) = self.lstm(self.embed(tokens))
        return self.head(h[-1])


class TransformerClassifier(nn.Module):
    """Embedding + learned positions -> one encoder layer -> mean over real tokens -> linear."""

    def __init__(self, vocab: int, length: int, dim: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim, padding_idx=0)
        self.position = nn.Parameter(minidl.randn(length, dim) * 0.1)
        self.encoder = nn.TransformerEncoderLayer(dim, 4, dim_feedforward=64, dropout=0.0, batch_first=True)
        self.head = nn.Linear(dim, 2)

    def forward(self, tokens: minidl.Tensor) -> minidl.Tensor:
        padding = tokens == 0
        h = self.encoder(self.embed(tokens) + self.position, src_key_padding_mask=padding)
        keep = (~padding).unsqueeze(-1).float()
        return self.head((h * keep).sum(1) / keep.sum(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["lstm", "transformer"], default="lstm")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--small", action="store_true", help="tiny settings for a smoke test")
    args = parser.parse_args()
    n_train, n_test, epochs = (300, 100, 1) if args.small else (3000, 1000, args.epochs)

    minidl.manual_seed(0)
    rng = np.random.default_rng(0)
    train_texts, y_train = make_sentences(n_train, rng)
    test_texts, y_test = make_sentences(n_test, rng)
    tokenizer = Tokenizer(oov_token="<unk>")
    tokenizer.fit_on_texts(train_texts)
    length = 10
    x_train = pad_sequences(tokenizer.texts_to_sequences(train_texts), maxlen=length, padding="post")
    x_test = pad_sequences(tokenizer.texts_to_sequences(test_texts), maxlen=length, padding="post")
    vocab = len(tokenizer.word_index) + 1
    print(f"{n_train} training sentences, vocabulary of {vocab - 1} words; for example:")
    for text, label in zip(train_texts[:3], y_train[:3]):
        print(f"  {'positive' if label else 'negative'}: {text!r} -> {tokenizer.texts_to_sequences([text])[0]}")

    model = LSTMClassifier(vocab) if args.model == "lstm" else TransformerClassifier(vocab, length)
    optimizer = minidl.optim.Adam(model.parameters(), lr=3e-3)
    loader = DataLoader(
        TensorDataset(minidl.tensor(x_train, dtype=minidl.int64), minidl.tensor(y_train)), batch_size=32, shuffle=True
    )
    test_tokens = minidl.tensor(x_test, dtype=minidl.int64)
    for epoch in range(epochs):
        model.train()
        total = 0.0
        for tokens, labels in loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(tokens), labels)
            loss.backward()
            minidl.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            total += loss.item() * len(labels)
        model.eval()
        with minidl.no_grad():
            accuracy = float((model(test_tokens).argmax(1).numpy() == y_test).mean())
        print(f"epoch {epoch + 1}/{epochs}: train loss {total / n_train:.4f}, test accuracy {100 * accuracy:.1f}%")


if __name__ == "__main__":
    main()
