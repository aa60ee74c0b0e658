"""Language-model metrics."""

from __future__ import annotations

import math


def perplexity(loss: float) -> float:
    """``exp(loss)``: the perplexity of a mean next-token cross-entropy ``loss`` in nats.

    A model that spreads its probability evenly over ``k`` tokens has perplexity ``k``.
    """
    return math.exp(float(loss))
