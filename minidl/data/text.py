"""Text for word embeddings: a vocabulary, skip-gram training pairs, and a corpus with planted analogies.

word2vec's skip-gram "predicts surrounding words given a word": every (center, context)
pair within a window is one training example. Words that occur in similar contexts get
similar vectors, and the space picks up algebraic structure, V_king - V_man + V_woman ≈ V_queen.

analogy_corpus() generates sentences in which every person word comes with cue words for
its gender, its rank (royal or common) and its age, so those analogies are learnable
from a few thousand sentences; text_file_corpus() reads any text file instead.
"""

import re
from collections import Counter

import numpy as np

from minidl.data.dataset import TensorDataset

# (male, female) word pairs, by rank and age: the analogies hold along both axes.
PEOPLE = {
    ("royal", "adult"): ("king", "queen"),
    ("common", "adult"): ("man", "woman"),
    ("royal", "young"): ("prince", "princess"),
    ("common", "young"): ("boy", "girl"),
}
CUES = {
    "male": ["he", "his", "him", "beard"],
    "female": ["she", "her", "hers", "dress"],
    "royal": ["crown", "throne", "palace", "reign"],
    "common": ["farm", "market", "village", "work"],
    "adult": ["old", "wise", "married", "tall"],
    "young": ["small", "school", "play", "toy"],
}
FILLER = ["the", "a", "and", "of", "in", "with"]


def tokenize(text):
    """Lower-case words made of letters (and apostrophes)."""
    return re.findall(r"[a-z']+", text.lower())


class Vocabulary:
    """Maps words to integer ids (most frequent first) and back; words rarer than min_count are dropped."""

    def __init__(self, tokens, min_count=1):
        self.counts = Counter(tokens)
        kept = [w for w, c in sorted(self.counts.items(), key=lambda wc: (-wc[1], wc[0])) if c >= min_count]
        if not kept:
            raise ValueError(f"Vocabulary: no word occurs at least min_count={min_count} times")
        self.words = kept
        self.index = {w: i for i, w in enumerate(kept)}

    def __len__(self):
        return len(self.words)

    def __contains__(self, word):
        return word in self.index

    def __getitem__(self, word):
        try:
            return self.index[word]
        except KeyError:
            raise KeyError(f"Vocabulary: {word!r} is not in the vocabulary ({len(self)} words)") from None

    def encode(self, tokens):
        """Ids of the tokens that are in the vocabulary (others are skipped)."""
        return np.array([self.index[t] for t in tokens if t in self.index], dtype=np.int64)

    def decode(self, ids):
        return [self.words[int(i)] for i in ids]


def skipgram_pairs(sentences, vocabulary, window=2):
    """(center id, context id) pairs for every word and every neighbour within `window`, sentence by sentence."""
    centers, contexts = [], []
    for sentence in sentences:
        ids = vocabulary.encode(sentence)
        for offset in range(1, window + 1):
            if len(ids) > offset:
                centers += [ids[:-offset], ids[offset:]]  # both directions: left and right neighbours
                contexts += [ids[offset:], ids[:-offset]]
    if not centers:
        raise ValueError(f"skipgram_pairs: no sentence has two words within a window of {window}")
    return np.concatenate(centers), np.concatenate(contexts)


def analogy_corpus(n_sentences=3000, seed=0):
    """Generated sentences (lists of words) with the planted analogies of PEOPLE.

    Each sentence names one person and carries one cue word for each of its attributes
    (gender, rank, age) plus filler words, shuffled: e.g. ["crown", "the", "king", "old", "his"].
    """
    rng = np.random.default_rng(seed)
    people = [(word, (gender, rank, age)) for (rank, age), pair in PEOPLE.items()
              for gender, word in zip(("male", "female"), pair)]  # fmt: skip
    sentences = []
    for _ in range(n_sentences):
        word, attributes = people[rng.integers(len(people))]
        sentence = [word] + [CUES[a][rng.integers(len(CUES[a]))] for a in attributes]
        sentence += [FILLER[i] for i in rng.integers(len(FILLER), size=2)]
        rng.shuffle(sentence)
        sentences.append(sentence)
    return sentences


def text_file_corpus(path):
    """Any text file -> sentences (lists of lower-case words), split at . ! ? and blank lines."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    sentences = [tokenize(s) for s in re.split(r"[.!?]+|\n\s*\n", text)]
    return [s for s in sentences if s]


def skipgram_dataset(sentences, window=2, min_count=1):
    """(TensorDataset of (center, context) ids, Vocabulary) ready for a DataLoader."""
    vocabulary = Vocabulary([w for s in sentences for w in s], min_count=min_count)
    centers, contexts = skipgram_pairs(sentences, vocabulary, window)
    return TensorDataset(centers, contexts), vocabulary


def cbow_windows(sentences, vocabulary, window=2):
    """CBOW examples: (contexts (N, 2·window) int64, centers (N,) int64), one per word of every sentence.

    "Continuous bag of words: predict a word given surrounding words." A word's contexts are the
    up to `window` words on each side within its sentence; missing ones (near the sentence's ends)
    are -1, to be masked out. Words without any neighbour are skipped.
    """
    contexts, centers = [], []
    for sentence in sentences:
        ids = vocabulary.encode(sentence)
        for i, center in enumerate(ids):
            around = [ids[j] if 0 <= j < len(ids) and j != i else -1 for j in range(i - window, i + window + 1)]
            around = around[:window] + around[window + 1 :]
            if any(a >= 0 for a in around):
                contexts.append(around)
                centers.append(center)
    if not centers:
        raise ValueError(f"cbow_windows: no sentence has two words within a window of {window}")
    return np.array(contexts, dtype=np.int64), np.array(centers, dtype=np.int64)


def analogy_questions():
    """The analogies planted in analogy_corpus(): (a, b, c, d) for "a is to b as c is to d".

    Along each attribute (gender, rank, age) the four pairs of PEOPLE that differ only in it, e.g.
    (man, woman, king, queen) and (king, prince, queen, princess): 3 attributes x 4 pairs x 3 others = 36.
    """
    words = {(gender, rank, age): pair[g] for (rank, age), pair in PEOPLE.items()
             for g, gender in enumerate(("male", "female"))}  # fmt: skip
    axes = {0: ("male", "female"), 1: ("royal", "common"), 2: ("adult", "young")}
    questions = []
    for axis, (first, second) in axes.items():
        pairs = []
        for key, word in sorted(words.items()):
            if key[axis] == first:
                other = key[:axis] + (second,) + key[axis + 1 :]
                pairs.append((word, words[other]))
        for a, b in pairs:
            for c, d in pairs:
                if a != c:
                    questions.append((a, b, c, d))
    return questions
