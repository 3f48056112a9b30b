"""minidl's one random number generator, so a single `manual_seed` makes a run repeatable.

Everything random in minidl (rand/randn, initializers, dropout masks, data
shuffling) draws from `generator()`. Checkpoints save and restore its state.
"""

import numpy as np

_generator = np.random.default_rng(0)


def manual_seed(seed):
    """Reseed the global generator; returns it."""
    global _generator
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"manual_seed: seed must be a non-negative integer, got {seed!r}")
    _generator = np.random.default_rng(int(seed))
    return _generator


def generator():
    """The global numpy Generator every random op draws from."""
    return _generator


def get_rng_state():
    """A JSON-friendly snapshot of the generator state (for checkpoints)."""
    return _generator.bit_generator.state


def set_rng_state(state):
    _generator.bit_generator.state = state
