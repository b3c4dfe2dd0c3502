"""Is the demo's task learner a fair one? Test accuracy of the default image learner at a small labeled
set beside logistic regression and 1-nearest-neighbour on the raw pixels of the same labels.

    python bench/bench_learner.py [--datasets mnist5k,digits] [--labels 200] [--seeds 3]

One line per (dataset, seed): the engine's learner at stage 0 (the dataset's default model, epochs and
optimiser, exactly what the Stage explorer trains), logistic regression and 1-NN on the same labeled
indices, and the learner's training seconds. Target: the learner at least 85% at 200 MNIST labels and
clearly above both baselines (DESIGN: "a demo's task learner is a fair one").
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from tavaal_core import ActiveLearner, ExperimentConfig  # noqa: E402
from tavaal_core.data import load_dataset  # noqa: E402
from tavaal_core.training import small_model_cpu_threads  # noqa: E402


def flat(x: torch.Tensor) -> np.ndarray:
    return x.reshape(len(x), -1).float().numpy() / (255.0 if x.dtype == torch.uint8 else 1.0)


def main() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="mnist5k,digits")
    parser.add_argument("--labels", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(small_model_cpu_threads("cnn") or torch.get_num_threads())
    print(f"{'dataset':<9} {'seed':>4} {'labels':>6}  {'learner':>8} {'logreg':>7} {'1-NN':>6}  {'train s':>7}  model")
    for name in args.datasets.split(","):
        ds = load_dataset(name)
        scores = []
        for seed in range(args.seeds):
            config = ExperimentConfig(dataset=name, method="random", initial_size=args.labels, stages=1,
                                      analysis_size=0, seed=seed, device="cpu")
            learner = ActiveLearner(config, dataset=ds).start()
            started = time.perf_counter()
            record = learner.step()
            seconds = record.timings.get("task training", time.perf_counter() - started)
            idx = record.labeled
            x_tr, y_tr = flat(ds.x_train[idx]), ds.y_train[idx].numpy()
            x_te, y_te = flat(ds.x_test), ds.y_test.numpy()
            logreg = LogisticRegression(max_iter=2000).fit(x_tr, y_tr).score(x_te, y_te)
            nn1 = KNeighborsClassifier(1).fit(x_tr, y_tr).score(x_te, y_te)
            scores.append((record.accuracy, logreg, nn1))
            cfg = learner.config
            print(f"{name:<9} {seed:>4} {args.labels:>6}  {record.accuracy:>8.3f} {logreg:>7.3f} {nn1:>6.3f}  "
                  f"{seconds:>7.2f}  {cfg.model}, {cfg.epochs_at(0)} epochs, batch {cfg.batch_size}, "
                  f"{cfg.optimizer} {cfg.lr:g}", flush=True)
        mean = np.mean(scores, axis=0)
        print(f"{name:<9} mean {args.labels:>6}  {mean[0]:>8.3f} {mean[1]:>7.3f} {mean[2]:>6.3f}")


if __name__ == "__main__":
    main()
