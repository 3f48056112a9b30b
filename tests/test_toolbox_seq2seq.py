"""Sequence to sequence (issue 13): greedy and beam-search decoding, and an encoder-decoder with attention
trained on the copy/reverse toy task.

Beam search with width 1 is greedy decoding; a beam wide enough to keep every prefix finds the best
sequence (checked against brute force). A wider beam is *usually* at least as good, but that is not a
theorem: a narrow beam can keep a prefix that a wider one drops in favour of prefixes that all turn
out worse. The tests show both: no wider beam scores worse on the trained model's test set, and a
random model where width 2 does score below width 1. Training time is measured in
benchmarks/bench_toolbox.py, never asserted here.
"""

import itertools

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import minidl
from minidl import data, nn, optim
from minidl.nn.decode import beam_search, greedy_decode
from minidl.nn.seq2seq import exact_match_accuracy


def random_model(seed, vocab=5, hidden=6, sharpness=2.0, batch=3):
    """A small random recurrent language model as a decode step: (step, initial state)."""
    rng = np.random.default_rng(seed)
    embedding = rng.standard_normal((vocab, hidden))
    recurrent = rng.standard_normal((2 * hidden, hidden)) / np.sqrt(hidden)
    output = rng.standard_normal((hidden, vocab)) * sharpness

    def step(tokens, state):
        h = np.tanh(np.concatenate([embedding[tokens], state], axis=1) @ recurrent)
        scores = h @ output
        shifted = scores - scores.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True)), h

    return step, rng.standard_normal((batch, hidden))


def sequence_score(step, state, bos, sequence):
    """The sum of the log-probabilities of `sequence` after bos, for one example (row 0 of state)."""
    tokens, total = np.array([bos]), 0.0
    for token in sequence:
        log_probs, state = step(tokens, state)
        total += log_probs[0, token]
        tokens = np.array([token])
    return total


@pytest.mark.parametrize("seed", range(20))
def test_beam_width_one_is_greedy_decoding(seed):
    step, state = random_model(seed)
    greedy, greedy_scores = greedy_decode(step, state, bos=0, eos=4, max_length=6, batch_size=3)
    beam, beam_scores = beam_search(step, state, bos=0, eos=4, beam_width=1, max_length=6, batch_size=3)
    assert beam == greedy
    np.testing.assert_array_equal(beam_scores, greedy_scores)  # the same sums, in the same order
    for sequence, score, row in zip(greedy, greedy_scores, state):
        assert score == pytest.approx(sequence_score(step, row[None], 0, sequence), rel=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_a_beam_that_keeps_every_prefix_finds_the_best_sequence(seed):
    vocab, eos, max_length = 4, 3, 4
    step, state = random_model(100 + seed, vocab=vocab, sharpness=1.0, batch=2)
    # Every candidate: ended by eos after 0..max_length-1 tokens, or max_length tokens without eos.
    candidates = [list(p) + [eos] for n in range(max_length) for p in itertools.product(range(eos), repeat=n)]
    candidates += [list(p) for p in itertools.product(range(eos), repeat=max_length)]
    width = eos ** (max_length - 1)  # live prefixes never exceed (vocab - 1)^(steps - 1)
    sequences, scores = beam_search(step, state, 0, eos, beam_width=width, max_length=max_length, batch_size=2)
    for b, row in enumerate(state):
        brute = [sequence_score(step, row[None], 0, c) for c in candidates]
        assert scores[b] == pytest.approx(max(brute), rel=1e-12)
        assert sequences[b] == candidates[int(np.argmax(brute))]


def test_wider_beams_are_usually_but_not_always_better():
    worse = []
    for seed in range(60):
        step, state = random_model(seed)
        previous = None
        for width in (1, 2, 3, 4, 6):
            _, scores = beam_search(step, state, 0, 4, width, 6, batch_size=3)
            if previous is not None:
                worse += [(seed, width, b) for b in np.flatnonzero(scores < previous)]
            previous = scores
    assert worse == [(49, 2, 2)]  # 1 case in 720: beam search is a heuristic (see the module docstring)


def test_decoders_check_their_arguments():
    step, state = random_model(0)
    with pytest.raises(ValueError, match="beam_search: beam_width must be a positive integer"):
        beam_search(step, state, 0, 4, beam_width=0, batch_size=3)
    with pytest.raises(ValueError, match="decode: max_length must be a positive integer"):
        greedy_decode(step, state, 0, 4, max_length=0, batch_size=3)
    with pytest.raises(ValueError, match=r"decode: step returned log_probs of shape \(3, 5\), expected \(2, vocab\)"):
        greedy_decode(lambda tokens, state: (np.zeros((3, 5)), state), None, 0, 4, max_length=3, batch_size=2)


def test_attention_seq2seq_learns_to_reverse_sequences_and_beam_search_decodes_it():
    """An attention seq2seq model trained on the reverse task (lengths 3-6, 7 symbols): 200 Adam steps.

    One test, so that the model is trained once (test_toolbox benchmarks time the training)."""
    minidl.manual_seed(0)
    train = data.seq2seq_task("reverse", 3000, (3, 6), vocab_size=10, seed=0)
    test = data.seq2seq_task("reverse", 300, (3, 6), vocab_size=10, seed=1)
    model = nn.Seq2Seq(10, embedding_size=32, hidden_size=64, score="dot")
    optimizer = optim.Adam(model.parameters(), lr=0.005)
    steps = 0
    with threadpool_limits(1):  # small matrices: a second BLAS thread only waits on a busy machine
        while steps < 200:
            for source, lengths, target in data.DataLoader(train, batch_size=64, shuffle=True):
                loss = model.loss(source, lengths, target)
                optimizer.zero_grad()
                loss.backward()
                optim.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                steps += 1
                if steps == 200:
                    break
        source, lengths, target = test.arrays
        greedy, greedy_scores = model.generate(source, lengths)
        accuracy = exact_match_accuracy(greedy, target, eos=data.sequences.EOS)
        assert accuracy >= 0.95, f"exact-sequence accuracy {accuracy:.3f}"

        # Beam search: no wider beam scores worse here (not a theorem, see above), and it is as accurate.
        previous = greedy_scores
        for width in (2, 3, 5):
            sequences, scores = model.generate(source, lengths, beam_width=width)
            assert np.all(scores >= previous - 1e-9), (
                f"width {width} scored worse on {np.flatnonzero(scores < previous)}"
            )
            previous = scores
        assert exact_match_accuracy(sequences, target, eos=data.sequences.EOS) >= accuracy - 0.01

    # The attention has learned the alignment: output position i reads source position n - 1 - i.
    state = model.encode(source[:1], lengths[:1])
    n = int(lengths[0])
    tokens, peaks = np.array([data.sequences.BOS]), []
    with minidl.no_grad():
        for i in range(n):
            _, state, weights = model.decoder_step(tokens, state)
            peaks.append(int(weights.array[0].argmax()))
            tokens = np.array([target[0, i]])
    assert peaks == list(range(n - 1, -1, -1))


def test_seq2seq_parameter_gradients_match_central_differences():
    """The whole model (packed bidirectional encoder, bridge, attention, decoder) in float64, every parameter."""
    minidl.manual_seed(0)
    model = nn.Seq2Seq(5, embedding_size=2, hidden_size=2, score="additive").double()
    source = np.array([[3, 4, 3], [4, 3, 0]])
    lengths, target = np.array([3, 2]), np.array([[3, 4, 3, 2], [3, 4, 2, 0]])
    model.zero_grad()
    model.loss(source, lengths, target).backward()
    for name, p in model.named_parameters():
        numeric = np.zeros(p.shape)
        for index in np.ndindex(p.shape):
            original = p.array[index]
            with minidl.no_grad():
                p.array[index] = original + 1e-6
                plus = model.loss(source, lengths, target).item()
                p.array[index] = original - 1e-6
                minus = model.loss(source, lengths, target).item()
                p.array[index] = original
            numeric[index] = (plus - minus) / 2e-6
        # gradcheck's rule (step 1e-6, float64): |analytic - numeric| <= 1e-5 + 1e-3·|numeric|
        np.testing.assert_allclose(p.grad.array, numeric, rtol=1e-3, atol=1e-5, err_msg=name)
