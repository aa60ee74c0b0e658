"""A multilayer perceptron written as its equations, with the backward pass derived by hand.

Layer ``l = 1..L`` maps the previous layer's activations ``a_{l-1}`` (``a_0 = x``) to::

    z_l = W_l a_{l-1} + b_l          W_l: [d_l, d_{l-1}],  b_l: [d_l]
    a_l = f_l(z_l)                   f_l: the hidden activation; the identity for l = L

so the network's output is ``a_L = z_L``: the prediction for the mean squared error, the logits
for the softmax cross-entropy. A batch holds one example per row, so in code ``z_l = a_{l-1}
W_lᵀ + b_l`` with ``a_{l-1}: [n, d_{l-1}]``.

Back-propagation (the chain rule, one layer at a time, from the loss down)::

    δ_L = ∂L/∂z_L                    MSE: 2 (a_L - y) / (n k)
                                     cross-entropy: (softmax(z_L) - onehot(y)) / n
    δ_l = (W_{l+1}ᵀ δ_{l+1}) ⊙ f'(z_l)
    ∂L/∂W_l = δ_l a_{l-1}ᵀ           summed over the batch
    ∂L/∂b_l = δ_l                    summed over the batch

:func:`mlp_gradients` computes exactly these; ``tests/test_mlp.py`` checks them against
``jax.grad`` of :func:`mlp_loss` in float64, and a gradient-descent loop built on them against
``optax.sgd``. ``notebooks/05_mlp_from_first_principles.ipynb`` walks through an example.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Literal, get_args

import jax
import jax.numpy as jnp
from jax import Array

from jaxllm.config import require
from jaxllm.losses import cross_entropy, mean_squared_error

Activation = Literal["tanh", "relu", "sigmoid", "identity"]
ACTIVATIONS = get_args(Activation)
MLPLoss = Literal["mse", "cross_entropy"]
MLP_LOSSES = get_args(MLPLoss)

# One layer's parameters: {"W": float[d_out, d_in], "b": float[d_out]}.
Layer = dict[str, Array]


@dataclasses.dataclass(frozen=True)
class MLPConfig:
    """The shape of a multilayer perceptron and what it is trained to minimise.

    Attributes:
      sizes: ``(d_0, d_1, ..., d_L)``: the input width, each hidden layer's width, and the
        output width (``k`` outputs for regression, ``k`` classes for cross-entropy).
      activation: ``f`` of every hidden layer; the output layer is linear.
      loss: ``"mse"`` (mean over examples and outputs of the squared error) or
        ``"cross_entropy"`` (mean over examples of the softmax cross-entropy with integer
        class labels).
    """

    sizes: tuple[int, ...] = (2, 8, 1)
    activation: Activation = "tanh"
    loss: MLPLoss = "mse"

    def __post_init__(self):
        require(
            len(self.sizes) >= 2 and all(isinstance(d, int) and d > 0 for d in self.sizes),
            f"MLPConfig.sizes must be two or more positive widths (input ... output), "
            f"got {self.sizes!r}",
        )
        require(
            self.activation in ACTIVATIONS,
            f"MLPConfig.activation must be one of {ACTIVATIONS}, got {self.activation!r}",
        )
        require(
            self.loss in MLP_LOSSES,
            f"MLPConfig.loss must be one of {MLP_LOSSES}, got {self.loss!r}",
        )


def activation_and_derivative(name: Activation) -> tuple[Callable, Callable]:
    """``(f, f')`` for an activation, ``f'`` written out rather than differentiated.

    tanh' = 1 - tanh², relu' = [z > 0], sigmoid' = σ (1 - σ), identity' = 1.
    """
    if name == "tanh":
        return jnp.tanh, lambda z: 1.0 - jnp.tanh(z) ** 2
    if name == "relu":
        return jax.nn.relu, lambda z: (z > 0).astype(z.dtype)
    if name == "sigmoid":
        return jax.nn.sigmoid, lambda z: jax.nn.sigmoid(z) * (1.0 - jax.nn.sigmoid(z))
    if name == "identity":
        return lambda z: z, jnp.ones_like
    raise ValueError(f"unknown activation {name!r}; choose one of {ACTIVATIONS}")


def init_mlp(config: MLPConfig, key: Array, dtype: jnp.dtype = jnp.float32) -> tuple[Layer, ...]:
    """Random parameters: ``W_l ~ N(0, 1 / d_{l-1})`` (LeCun's scale), ``b_l = 0``.

    Returns:
      one ``{"W": float[d_l, d_{l-1}], "b": float[d_l]}`` per layer, first layer first.
    """
    keys = jax.random.split(key, len(config.sizes) - 1)
    return tuple(
        {
            "W": jax.random.normal(k, (d_out, d_in), dtype) / jnp.sqrt(jnp.asarray(d_in, dtype)),
            "b": jnp.zeros((d_out,), dtype),
        }
        for k, d_in, d_out in zip(keys, config.sizes[:-1], config.sizes[1:], strict=True)
    )


def mlp_forward(
    params: tuple[Layer, ...], x: Array, activation: Activation
) -> tuple[list[Array], list[Array]]:
    """The forward pass, keeping what the backward pass needs.

    Args:
      params: from :func:`init_mlp`.
      x: float[n, d_0], one example per row.
      activation: ``f`` of the hidden layers.

    Returns:
      ``(zs, activations)``: ``zs[l-1] = z_l: float[n, d_l]`` for ``l = 1..L``, and
      ``activations[l] = a_l`` for ``l = 0..L`` (``a_0 = x``, ``a_L = z_L``, the output).
    """
    f, _ = activation_and_derivative(activation)
    zs, activations = [], [x]
    for index, layer in enumerate(params):
        z = activations[-1] @ layer["W"].T + layer["b"]  # (n, d_l)
        zs.append(z)
        activations.append(z if index == len(params) - 1 else f(z))
    return zs, activations


def mlp_apply(params: tuple[Layer, ...], x: Array, activation: Activation) -> Array:
    """The network's output ``a_L``: float[n, d_L] (predictions, or logits for cross-entropy)."""
    return mlp_forward(params, x, activation)[1][-1]


def mlp_loss(params: tuple[Layer, ...], batch: dict[str, Array], config: MLPConfig) -> Array:
    """The scalar loss of a batch ``{"x": float[n, d_0], "y": ...}``.

    ``y`` is float[n, d_L] for ``"mse"`` and int[n] class ids for ``"cross_entropy"``.
    """
    return output_loss(mlp_apply(params, batch["x"], config.activation), batch["y"], config.loss)


def output_loss(output: Array, y: Array, loss: MLPLoss) -> Array:
    """The scalar loss of the network's output ``a_L``: float[n, d_L] against ``y``."""
    check_targets(output, y, loss)
    if loss == "mse":
        return mean_squared_error(output, y)
    return cross_entropy(output, y)


def check_targets(output: Array, y: Array, loss: MLPLoss) -> None:
    """Raise ``ValueError`` unless ``y`` fits the output: float[n, d_L] for ``"mse"``, int[n]
    class ids for ``"cross_entropy"`` (a ``[n]`` target would broadcast to ``[n, n]``)."""
    n, k = output.shape
    if loss == "mse" and tuple(y.shape) != (n, k):
        raise ValueError(
            f"mse targets must have shape {(n, k)} like the output, got "
            f"{tuple(y.shape)}; reshape them (e.g. y[:, None])"
        )
    if loss == "cross_entropy" and (
        tuple(y.shape) != (n,) or not jnp.issubdtype(y.dtype, jnp.integer)
    ):
        raise ValueError(
            f"cross_entropy targets must be int class ids of shape {(n,)}, got "
            f"{y.dtype}{list(y.shape)}"
        )


def output_delta(output: Array, y: Array, loss: MLPLoss) -> Array:
    """``δ_L = ∂L/∂z_L``: float[n, d_L], for a linear output layer (``a_L = z_L``).

    MSE ``L = Σ (a_L - y)² / (n k)`` gives ``2 (a_L - y) / (n k)``; the mean softmax
    cross-entropy gives ``(softmax(z_L) - onehot(y)) / n``.
    """
    check_targets(output, y, loss)
    n, k = output.shape
    if loss == "mse":
        return 2.0 * (output - y.astype(output.dtype)) / (n * k)
    return (jax.nn.softmax(output, axis=-1) - jax.nn.one_hot(y, k, dtype=output.dtype)) / n


def mlp_gradients(
    params: tuple[Layer, ...], batch: dict[str, Array], config: MLPConfig
) -> tuple[Array, tuple[Layer, ...]]:
    """The loss and its gradient by hand-written back-propagation (see the module docstring).

    Returns:
      ``(loss, grads)``, ``grads`` shaped like ``params``: ``{"W": ∂L/∂W_l, "b": ∂L/∂b_l}``.
    """
    _, f_prime = activation_and_derivative(config.activation)
    zs, activations = mlp_forward(params, batch["x"], config.activation)
    delta = output_delta(activations[-1], batch["y"], config.loss)  # δ_L: (n, d_L)
    grads: list[Layer] = []
    for layer in reversed(range(len(params))):
        grads.append({"W": delta.T @ activations[layer], "b": jnp.sum(delta, axis=0)})
        if layer > 0:  # δ_l = (W_{l+1}ᵀ δ_{l+1}) ⊙ f'(z_l), a row per example
            delta = (delta @ params[layer]["W"]) * f_prime(zs[layer - 1])
    return output_loss(activations[-1], batch["y"], config.loss), tuple(reversed(grads))


def mlp_gradient_descent(
    params: tuple[Layer, ...],
    batches: Callable[[int], dict[str, Array]],
    config: MLPConfig,
    *,
    learning_rate: float,
    steps: int,
) -> tuple[tuple[Layer, ...], list[float]]:
    """``θ ← θ - α ∂L/∂θ`` for ``steps`` steps with :func:`mlp_gradients`, one compiled step.

    Args:
      batches: ``step -> batch``.

    Returns:
      the final parameters, and the loss before each step.
    """

    @jax.jit
    def step(params: tuple[Layer, ...], batch: dict[str, Array]):
        loss, grads = mlp_gradients(params, batch, config)
        return jax.tree.map(lambda p, g: p - learning_rate * g, params, grads), loss

    losses = []
    for s in range(steps):
        params, loss = step(params, batches(s))
        losses.append(float(loss))
    return params, losses
