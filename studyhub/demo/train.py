"""Deterministic training of the demo CNN on the synthetic train split.

Reproduce the shipped weights with::

    python -m studyhub.demo.train --out studyhub/demo/weights/inspection_cnn.pt

The command generates the train split in memory, trains :class:`InspectionNet`
on one CPU thread with fixed seeds and ``torch.use_deterministic_algorithms``,
writes a plain ``state_dict`` with :func:`torch.save`, and prints the file's
SHA-256, the CPU capability and kernel fingerprint of this machine, the held-out
test accuracy and the stamp-shortcut measurement. The bytes are identical from
run to run on the same torch build and CPU kernels; other kernels (another CPU,
instruction set or torch build) sum in another order and give other bits.
:func:`kernel_fingerprint` tells the two apart cheaply; see ``weights/WEIGHTS.md``
for the recorded hash and fingerprint and the tolerance that holds elsewhere.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from studyhub.demo.evaluate import measure_shortcut
from studyhub.demo.model import InspectionNet, preprocess
from studyhub.demo.synth import generate
from studyhub.errors import InputError

__all__ = [
    "KERNEL_PROBE",
    "TrainConfig",
    "kernel_fingerprint",
    "main",
    "save_weights",
    "sha256_file",
    "train",
    "weights_sha256",
]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines the trained weights.

    Attributes
    ----------
    n_train : int
        Train-split cases generated (classes balanced).
    epochs : int
        Passes over the train split.
    batch_size : int
        Cases per optimizer step.
    learning_rate : float
        Peak Adam learning rate (cosine decay to zero over all steps).
    weight_decay : float
        Adam weight decay.
    data_seed : int
        Seed of :func:`studyhub.demo.synth.generate`.
    seed : int
        Seed of weight initialisation and batch shuffling.
    """

    n_train: int = 3000
    epochs: int = 8
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    data_seed: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_train", "epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InputError(f"{name} is {value!r}; pass an integer >= 1")
        for name in ("seed", "data_seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise InputError(f"{name} is {value!r}; pass a non-negative integer such as 0")
        if not self.learning_rate > 0:
            raise InputError(f"learning_rate is {self.learning_rate!r}; pass a positive number")


@contextmanager
def _deterministic(seed: int) -> Iterator[None]:
    """Single thread, deterministic kernels, seeded torch; all restored on exit."""
    threads = torch.get_num_threads()
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        torch.set_num_threads(threads)


def train(config: TrainConfig | None = None, *, verbose: bool = False) -> InspectionNet:
    """Train :class:`InspectionNet` deterministically on the CPU.

    Parameters
    ----------
    config : TrainConfig, optional
        Hyperparameters and seeds; default ``TrainConfig()``, the shipped weights.
    verbose : bool, default False
        Print the mean loss of each epoch to standard error.

    Returns
    -------
    InspectionNet
        The trained model, in eval mode.
    """
    config = config or TrainConfig()
    samples = generate(config.n_train, split="train", seed=config.data_seed)
    images = torch.stack([preprocess(s.image) for s in samples])
    labels = torch.tensor([s.label_index for s in samples], dtype=torch.long)
    with _deterministic(config.seed):
        model = InspectionNet()
        optimizer = torch.optim.Adam(
            model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
        steps_per_epoch = -(-config.n_train // config.batch_size)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=config.learning_rate,
            total_steps=config.epochs * steps_per_epoch,
            pct_start=0.15,
        )
        loss_fn = nn.CrossEntropyLoss()
        shuffler = torch.Generator().manual_seed(config.seed)
        model.train()
        for epoch in range(config.epochs):
            order = torch.randperm(config.n_train, generator=shuffler)
            total = 0.0
            for start in range(0, config.n_train, config.batch_size):
                idx = order[start : start + config.batch_size]
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(images[idx]), labels[idx])
                loss.backward()
                optimizer.step()
                schedule.step()
                total += loss.item() * len(idx)
            if verbose:
                print(
                    f"epoch {epoch + 1}/{config.epochs}: loss {total / config.n_train:.4f}",
                    file=sys.stderr,
                )
    model.eval()
    return model


KERNEL_PROBE = TrainConfig(n_train=120, epochs=1)
"""The training :func:`kernel_fingerprint` runs: two steps, a full batch of 64 and a
partial one of 56, the two batch shapes of every epoch of ``TrainConfig()``."""


def _state_bytes(model: nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getvalue()


def weights_sha256(model: nn.Module) -> str:
    """Hex SHA-256 of the bytes :func:`save_weights` writes for ``model``.

    Parameters
    ----------
    model : torch.nn.Module
        A model.

    Returns
    -------
    str
        64 lowercase hex digits, the hash the weights file would have.
    """
    return hashlib.sha256(_state_bytes(model)).hexdigest()


def kernel_fingerprint() -> str:
    """SHA-256 of the weights a two-step training gives on this machine.

    The probe (:data:`KERNEL_PROBE`) runs the same operations on the same batch
    shapes as the full training, so a machine whose kernels sum in another
    order (another CPU instruction set, vendor library or torch build) gets
    another fingerprint, and two machines with the same fingerprint are expected
    to compute the full training bit for bit alike (the retraining test holds
    them to it). It takes about a second.

    Returns
    -------
    str
        64 lowercase hex digits; compare with the ``kernel fingerprint`` recorded
        in ``weights/SHA256SUMS``.
    """
    return weights_sha256(train(KERNEL_PROBE))


def save_weights(model: nn.Module, path: str | Path) -> Path:
    """Write ``model.state_dict()`` with :func:`torch.save`, independent of the file name.

    :func:`torch.save` names the archive's top folder after the file, so the
    same weights saved under two names hash differently; saving through a
    buffer gives every copy the folder name ``archive`` and the same bytes.

    Parameters
    ----------
    model : torch.nn.Module
        The trained model.
    path : str or Path
        Destination; parent folders are created.

    Returns
    -------
    Path
        ``path``.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(_state_bytes(model))
    return out


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes.

    Parameters
    ----------
    path : str or Path
        The file.

    Returns
    -------
    str
        64 lowercase hex digits.
    """
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: train, save the ``state_dict``, print its SHA-256 and held-out results.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments; default ``sys.argv[1:]``.

    Returns
    -------
    int
        Exit status, 0.
    """
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(
        prog="python -m studyhub.demo.train", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--out", type=Path, required=True, help="where to write the state_dict")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--n-train", type=int, default=defaults.n_train)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--data-seed", type=int, default=defaults.data_seed)
    parser.add_argument("--n-test", type=int, default=1000, help="test-split cases to evaluate on")
    args = parser.parse_args(argv)
    try:
        config = TrainConfig(
            n_train=args.n_train, epochs=args.epochs, seed=args.seed, data_seed=args.data_seed
        )
        test = generate(args.n_test, split="test", seed=config.data_seed)
    except InputError as exc:
        parser.error(str(exc))
    began = time.perf_counter()
    model = train(config, verbose=True)
    elapsed = time.perf_counter() - began
    save_weights(model, args.out)
    print(f"trained in {elapsed:.1f} s with {config}")
    print(f"sha256 {sha256_file(args.out)}  {args.out}")
    print(f"torch {torch.__version__}, cpu capability {torch.backends.cpu.get_cpu_capability()}")
    print(f"kernel fingerprint {kernel_fingerprint()}")
    print(measure_shortcut(model, preprocess, test).summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
