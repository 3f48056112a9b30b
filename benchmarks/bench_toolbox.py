"""The toolbox's must-show numbers (issue 13), with PyTorch CPU as the peer where it has the same thing.

    python benchmarks/bench_toolbox.py [--cases seq2seq,cnn1d,word2vec,distill,second] [--seeds 0,1,2]

seq2seq   the attention encoder-decoder of tests/test_toolbox_seq2seq.py (reverse task, lengths 3-6,
          200 Adam steps): exact-sequence accuracy (greedy and beam), training seconds; the peer is the
          same model written in PyTorch (same architecture, copied initial weights, same batches).
cnn1d     a 1-D CNN on length-40 signals through Conv1d and through Conv2d with (1, k) kernels (the
          model of tests/test_toolbox_layers.py): accuracy, whether the two runs agree bit for bit,
          seconds; the peer is torch.nn.Conv1d with copied weights.
word2vec  skip-gram and CBOW with each output layer on data.analogy_corpus(): top-1/top-3 accuracy on
          the 36 planted analogies, per seed, and training seconds.
distill   five teacher MLPs, their ensemble and an 8-unit student on the digits (labels only, and
          distilled), the code of tests/test_toolbox_distillation.py.
second    hvp against hessian·v and finite differences; L-BFGS iterates against PyTorch's.

Times are medians over the seeds on one thread, on whatever else the machine is running: compare the
ratio within a row, not seconds across runs. Ratio = PyTorch s / minidl s (> 1: minidl is faster).
"""

import argparse
import os
import pathlib
import statistics
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

import minidl
from minidl import data, nn, optim

TESTS = pathlib.Path(__file__).resolve().parents[1] / "tests"


# ---------------------------------------------------------------------------
# seq2seq, and the same model in PyTorch
# ---------------------------------------------------------------------------
SEQ2SEQ = dict(kind="reverse", length=(3, 6), vocab=10, hidden=64, embedding=32, steps=200, batch=64, lr=0.005)


def torch_seq2seq(torch, model):
    """Our nn.Seq2Seq (score "dot") written with torch.nn, its weights copied from `model`."""
    t = torch.nn

    class TorchSeq2Seq(t.Module):
        def __init__(self):
            super().__init__()
            vocab, emb, hid = model.source_vocab, model.source_embedding.embedding_dim, model.hidden_size
            self.source_embedding, self.target_embedding = t.Embedding(vocab, emb), t.Embedding(vocab, emb)
            self.encoder = t.GRU(emb, hid, batch_first=True, bidirectional=True)
            self.bridge = t.Linear(2 * hid, hid)
            self.decoder = t.GRUCell(emb + 2 * hid, hid)
            self.key_projection = t.Linear(2 * hid, hid, bias=False)
            self.output = t.Linear(3 * hid, vocab)

        def forward(self, source, lengths, target_in):
            steps = int(lengths.max())
            embedded = self.source_embedding(source[:, :steps])
            packed = t.utils.rnn.pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
            output, h_n = self.encoder(packed)
            memory, _ = t.utils.rnn.pad_packed_sequence(output, batch_first=True, total_length=steps)
            h = torch.tanh(self.bridge(torch.cat([h_n[0], h_n[1]], dim=1)))
            context = memory.new_zeros(memory.shape[0], memory.shape[2])
            keys = self.key_projection(memory)
            mask = torch.arange(steps)[None, :] < lengths[:, None]
            scores = []
            for i in range(target_in.shape[1]):
                h = self.decoder(torch.cat([self.target_embedding(target_in[:, i]), context], dim=1), h)
                attention = (keys @ h.unsqueeze(2)).squeeze(2).masked_fill(~mask, torch.finfo(h.dtype).min)
                context = (attention.softmax(dim=1).unsqueeze(1) @ memory).squeeze(1)
                scores.append(self.output(torch.cat([h, context], dim=1)))
            return torch.stack(scores, dim=1)

    peer = TorchSeq2Seq()
    ours = dict(model.named_parameters())
    same = ("source_embedding.weight", "target_embedding.weight", "bridge.weight", "bridge.bias",
            "key_projection.weight", "output.weight", "output.bias")  # fmt: skip
    names = {name: name for name in same}
    for direction, stack in (("", "cells"), ("_reverse", "cells_reverse")):
        for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            names[f"encoder.{p}_l0{direction}"] = f"encoder.{stack}.0.{p}"
    for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        names[f"decoder.{p}"] = f"decoder.{p}"
    with torch.no_grad():
        for theirs, mine in names.items():
            peer.get_parameter(theirs).copy_(torch.from_numpy(ours[mine].array))
    assert len(names) == len(list(peer.parameters())) == len(ours)
    return peer


def bench_seq2seq(seeds, peer=True):
    c = SEQ2SEQ
    train = data.seq2seq_task(c["kind"], 3000, c["length"], c["vocab"], seed=0)
    test = data.seq2seq_task(c["kind"], 300, c["length"], c["vocab"], seed=1)
    source, lengths, target = test.arrays
    rows = []
    for seed in seeds:
        minidl.manual_seed(seed)
        model = nn.Seq2Seq(c["vocab"], embedding_size=c["embedding"], hidden_size=c["hidden"], score="dot")
        batches = []
        loader = data.DataLoader(train, batch_size=c["batch"], shuffle=True)
        while len(batches) < c["steps"]:
            batches += list(loader)
        batches = batches[: c["steps"]]
        torch_model = None
        if peer:
            import torch

            torch.manual_seed(seed)
            torch_model = torch_seq2seq(torch, model)
        optimizer = optim.Adam(model.parameters(), lr=c["lr"])
        start = time.perf_counter()
        for s, n, y in batches:
            loss = model.loss(s, n, y)
            optimizer.zero_grad()
            loss.backward()
            optim.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        seconds = time.perf_counter() - start
        greedy, greedy_scores = model.generate(source, lengths)
        accuracy = {1: nn.seq2seq.exact_match_accuracy(greedy, target, 2)}
        worse = {}
        for width in (2, 3, 5):
            beam, scores = model.generate(source, lengths, beam_width=width)
            accuracy[width] = nn.seq2seq.exact_match_accuracy(beam, target, 2)
            worse[width] = int((scores < greedy_scores - 1e-9).sum())
        row = dict(seed=seed, seconds=seconds, accuracy=accuracy, worse_than_greedy=worse)
        if torch_model is not None:
            row.update(torch_run(torch, torch_model, batches, source, lengths, target))
        rows.append(row)
    print("\n## seq2seq: reverse task, lengths 3-6, 7 symbols, 200 Adam steps (batch 64), attention 'dot'\n")
    print("| seed | minidl s | greedy acc | beam 2 | beam 3 | beam 5 | beams scoring below greedy | PyTorch s "
          "| PyTorch acc | ratio |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        a = r["accuracy"]
        peer_cells = (f"{r['torch_seconds']:.1f} | {r['torch_accuracy']:.3f} | {r['torch_seconds'] / r['seconds']:.2f}"
                      if "torch_seconds" in r else "- | - | -")  # fmt: skip
        print(f"| {r['seed']} | {r['seconds']:.1f} | {a[1]:.3f} | {a[2]:.3f} | {a[3]:.3f} | {a[5]:.3f} | "
              f"{sum(r['worse_than_greedy'].values())} of 900 | {peer_cells} |")  # fmt: skip
    print(f"\nmedian minidl training time: {statistics.median(r['seconds'] for r in rows):.1f} s")


def torch_run(torch, model, batches, source, lengths, target):
    optimizer = torch.optim.Adam(model.parameters(), lr=SEQ2SEQ["lr"])
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=-100)
    start = time.perf_counter()
    for s, n, y in batches:
        y = y.array
        target_in = np.concatenate([np.full((len(y), 1), 1), y[:, :-1]], axis=1)
        scores = model(torch.from_numpy(s.array), torch.from_numpy(n.array), torch.from_numpy(target_in))
        labels = torch.from_numpy(np.where(y == 0, -100, y).reshape(-1))
        loss = loss_fn(scores.reshape(-1, scores.shape[-1]), labels)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    seconds = time.perf_counter() - start
    with torch.no_grad():  # greedy decoding with teacher forcing of its own outputs
        steps = 2 * int(lengths.max()) + 2
        tokens = np.full((len(source), 1), 1)
        for _ in range(steps):
            scores = model(torch.from_numpy(source), torch.from_numpy(lengths), torch.from_numpy(tokens))
            tokens = np.concatenate([tokens, scores[:, -1].argmax(dim=1).numpy()[:, None]], axis=1)
    sequences = []
    for row in tokens[:, 1:]:
        ends = np.flatnonzero(row == 2)
        sequences.append(row[: ends[0] + 1].tolist() if len(ends) else row.tolist())
    return dict(torch_seconds=seconds, torch_accuracy=nn.seq2seq.exact_match_accuracy(sequences, target, 2))


# ---------------------------------------------------------------------------
# 1-D CNN both ways
# ---------------------------------------------------------------------------
def bench_cnn1d(seeds, peer=True):
    sys.path.insert(0, str(TESTS))
    from test_toolbox_layers import sine_signals

    x_train, y_train = sine_signals(480, seed=1)
    x_test, y_test = sine_signals(240, seed=2)
    rows = []
    for seed in seeds:
        conv1d = conv1d_start(seed)
        conv2d = nn.Sequential(
            nn.Conv2d(1, 8, (1, 5), padding=(0, 2)), nn.ReLU(), nn.MaxPool2d((1, 2)),
            nn.Conv2d(8, 8, (1, 5), padding=(0, 2)), nn.ReLU(), nn.GlobalAvgPool(), nn.Linear(8, 3),
        )  # fmt: skip
        with minidl.no_grad():
            for p1, p2 in zip(conv1d.parameters(), conv2d.parameters()):
                p2.copy_(p1.array.reshape(p2.shape))
        order = np.random.default_rng(3 + seed).permutation(np.tile(np.arange(480), 4)).reshape(-1, 32)
        result = {}
        for name, model, x, xt in (("conv1d", conv1d, x_train, x_test),
                                   ("conv2d", conv2d, x_train[:, :, None], x_test[:, :, None])):  # fmt: skip
            opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            losses, start = [], time.perf_counter()
            for batch in order:
                loss = nn.functional.cross_entropy(model(minidl.tensor(x[batch])), y_train[batch])
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
            seconds = time.perf_counter() - start
            with minidl.no_grad():
                accuracy = float((model(minidl.tensor(xt)).array.argmax(1) == y_test).mean())
            result[name] = (accuracy, seconds, losses)
        same = result["conv1d"][2] == result["conv2d"][2]
        peer_result = torch_cnn1d(conv1d_start(seed), order, x_train, y_train, x_test, y_test) if peer else None
        rows.append((seed, result, same, peer_result))
    print("\n## 1-D CNN on length-40 signals (3 classes), 60 SGD steps: Conv1d vs Conv2d (1, k)\n")
    print("| seed | Conv1d acc | Conv1d s | Conv2d (1,k) acc | Conv2d s | losses equal bit for bit "
          "| PyTorch Conv1d acc | PyTorch s | ratio |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for seed, r, same, p in rows:
        peer_cells = f"{p[0]:.3f} | {p[1]:.2f} | {p[1] / r['conv1d'][1]:.2f}" if p else "- | - | -"
        print(f"| {seed} | {r['conv1d'][0]:.3f} | {r['conv1d'][1]:.2f} | {r['conv2d'][0]:.3f} | {r['conv2d'][1]:.2f} | "
              f"{same} | {peer_cells} |")  # fmt: skip


def conv1d_start(seed):
    minidl.manual_seed(seed)
    return nn.Sequential(nn.Conv1d(1, 8, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2),
                         nn.Conv1d(8, 8, 5, padding=2), nn.ReLU(), nn.GlobalAvgPool(), nn.Linear(8, 3))  # fmt: skip


def torch_cnn1d(start, order, x_train, y_train, x_test, y_test):
    import torch

    t = torch.nn
    model = t.Sequential(t.Conv1d(1, 8, 5, padding=2), t.ReLU(), t.MaxPool1d(2), t.Conv1d(8, 8, 5, padding=2), t.ReLU(),
                         t.AdaptiveAvgPool1d(1), t.Flatten(), t.Linear(8, 3))  # fmt: skip
    with torch.no_grad():
        for p, q in zip([p for p in model.parameters()], start.parameters()):
            p.copy_(torch.from_numpy(q.array))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    start_time = time.perf_counter()
    for batch in order:
        loss = t.functional.cross_entropy(model(torch.from_numpy(x_train[batch])), torch.from_numpy(y_train[batch]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - start_time
    with torch.no_grad():
        accuracy = float((model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean())
    return accuracy, seconds


# ---------------------------------------------------------------------------
# word2vec, distillation, second order
# ---------------------------------------------------------------------------
def bench_word2vec(seeds):
    from minidl.nn.word2vec import analogy_accuracy, train_word2vec

    sentences = data.analogy_corpus(3000, seed=0)
    print("\n## word2vec on data.analogy_corpus(3000): the 36 planted analogies, top-1 / top-3, per seed\n")
    print("| mode | output | epochs | " + " | ".join(f"seed {s}" for s in seeds) + " | median s |")
    print("|---|---|---|" + "---|" * len(seeds) + "---|")
    for mode, epochs in (("skipgram", 1), ("cbow", 2)):
        for output in ("full", "hierarchical", "sampled", "negative", "nce"):
            cells, times = [], []
            for seed in seeds:
                minidl.manual_seed(seed)
                start = time.perf_counter()
                model, vocabulary = train_word2vec(sentences, mode=mode, output=output, epochs=epochs)
                times.append(time.perf_counter() - start)
                v = model.vectors()
                cells.append(f"{analogy_accuracy(v, vocabulary, k=1):.3f} / {analogy_accuracy(v, vocabulary, k=3):.3f}")
            print(f"| {mode} | {output} | {epochs} | " + " | ".join(cells) + f" | {statistics.median(times):.1f} |")


def bench_distill(seeds):
    sys.path.insert(0, str(TESTS))
    from test_toolbox_distillation import distill_digits

    rows = {"teachers, mean of the five": [], "ensemble (mean of probabilities)": [], "student, labels only": [],
            "student, distilled (T = 4, alpha = 0.9)": []}  # fmt: skip
    kl = {"labels only": [], "distilled": []}
    start = time.perf_counter()
    for seed in seeds:
        teachers, ensemble, students, x_test, y_test = distill_digits(seed=seed)
        x = minidl.tensor(x_test)
        with minidl.no_grad():
            accuracy = [float((m(x).array.argmax(1) == y_test).mean()) for m in teachers]
            accuracy += [float((ensemble.predict(x) == y_test).mean())]
            accuracy += [float((s(x).array.argmax(1) == y_test).mean()) for s in students.values()]
            soft = ensemble(x, temperature=4.0).array  # the teacher's soft targets on the test set
            for kind, student in students.items():  # how far the student is from them: KL(soft || student at T)
                log_q = (student(x) / 4.0).log_softmax(axis=1).array
                kl[kind].append(float((soft * (np.log(soft) - log_q)).sum(1).mean()))
        for row, value in zip(rows.values(), [statistics.mean(accuracy[:5])] + accuracy[5:]):
            row.append(value)
    seconds = (time.perf_counter() - start) / len(seeds)
    print("\n## distillation on the digits: five 64-128-10 teachers, an 8-unit student, test accuracy per seed\n")
    print("| model | " + " | ".join(f"seed {s}" for s in seeds) + " | median |")
    print("|---|" + "---|" * (len(seeds) + 1))
    for name, values in rows.items():
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in values) + f" | {statistics.median(values):.3f} |")
    for kind, values in kl.items():
        print(f"| KL(teacher at T = 4 ‖ student), {kind} | " + " | ".join(f"{v:.3f}" for v in values)
              + f" | {statistics.median(values):.3f} |")  # fmt: skip
    gains = [d - h for d, h in zip(rows["student, distilled (T = 4, alpha = 0.9)"], rows["student, labels only"])]
    print(
        f"\ndistillation's gain for the student: {', '.join(f'{100 * g:+.1f}' for g in gains)} points; "
        f"{seconds:.1f} s per seed (5 teachers x 10 epochs, 2 students x 20 epochs)"
    )


def bench_second_order():
    from minidl.autograd import functional as AF

    sys.path.insert(0, str(TESTS))
    from test_toolbox_second_order import gradient_of, objective

    rng = np.random.default_rng(1)
    x, v = minidl.tensor(rng.standard_normal(5)), minidl.tensor(rng.standard_normal(5))
    hv = AF.hvp(objective, x, v)[1].array
    h = AF.hessian(objective, x).array
    step = 1e-5
    fd = (gradient_of(minidl.tensor(x.array + step * v.array, requires_grad=True))
          - gradient_of(minidl.tensor(x.array - step * v.array, requires_grad=True))) / (2 * step)  # fmt: skip
    print("\n## second order (float64)\n")
    print(f"max|hvp - hessian @ v| = {np.abs(hv - h @ v.array).max():.1e}, max|hvp - central difference (h=1e-5)| = "
          f"{np.abs(hv - fd).max():.1e}, max|hvp| = {np.abs(hv).max():.2f}")  # fmt: skip
    from test_toolbox_torch_parity import lbfgs_runs

    for dtype, line_search in ((np.float64, None), (np.float64, "strong_wolfe"), (np.float32, None)):
        points, points_t, *_ = lbfgs_runs(dtype, line_search)
        diff = max(np.abs(a - b).max() for a, b in zip(points, points_t))
        print(
            f"L-BFGS {np.dtype(dtype).name}, line search {line_search}: {len(points)} evaluations (PyTorch "
            f"{len(points_t)}), max difference of the points {diff:.1e} (max|w| {np.abs(points[-1]).max():.2f})"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="seq2seq,cnn1d,word2vec,distill,second")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--no-peer", action="store_true", help="skip the PyTorch runs")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    cases = args.cases.split(",")
    print(f"minidl {minidl.__version__}, kernels {minidl.kernels_name()}, {os.cpu_count()} cores, one BLAS thread")
    if not args.no_peer:
        import torch

        torch.set_num_threads(1)
        print(f"PyTorch {torch.__version__}, 1 thread")
    with threadpool_limits(1):
        if "seq2seq" in cases:
            bench_seq2seq(seeds, peer=not args.no_peer)
        if "cnn1d" in cases:
            bench_cnn1d(seeds, peer=not args.no_peer)
        if "word2vec" in cases:
            bench_word2vec(seeds)
        if "distill" in cases:
            bench_distill(seeds)
        if "second" in cases and not args.no_peer:
            bench_second_order()


if __name__ == "__main__":
    main()
