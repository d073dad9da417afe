"""AdaBelief (Zhuang et al., NeurIPS 2020, https://arxiv.org/abs/2010.07468) as a Keras 3 optimizer.

Adam whose second moment tracks the squared deviation of the gradient from its running mean (the
"belief" in the gradient) instead of the squared gradient: a step is large where the gradient
agrees with its mean and small where it scatters. Per variable, at step ``t`` (the paper's
Algorithm 2, without rectification or AMSGrad)::

    m = b1 m + (1 - b1) g
    s = b2 s + (1 - b2) (g - m)^2 + eps
    theta -= lr (m / (1 - b1^t)) / (sqrt(s / (1 - b2^t)) + eps)

The NAG reference trains its final CIFAR-10 networks with ``lr = 1e-3``, ``betas = (0.9, 0.999)``,
``eps = 1e-8`` and a *coupled* L2 weight decay of 5e-4 on every parameter (added to the gradient,
not decoupled; no rectification): the defaults here. The decay is the Trainer's
(:func:`tfnas.train.optim.add_coupled_decay`, ``[train] weight_decay`` and ``weight_decay_scope``),
added after gradient clipping, before the optimizer sees the gradient.

Example:

>>> opt = AdaBelief(learning_rate=1e-3)
>>> opt.apply_gradients(zip(grads, variables))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, Dict

import keras
from keras import ops

__all__ = ["AdaBelief"]


@keras.saving.register_keras_serializable(package="tfnas")
class AdaBelief(keras.optimizers.Optimizer):
    """AdaBelief (see the module docstring for the update).

    Args:
      learning_rate: step size (a float or a Keras schedule).
      beta_1, beta_2: decay of the running mean of the gradient and of its squared deviation.
      epsilon: added to the second moment at every step and to the denominator of the update.
      **kwargs: the arguments every Keras optimizer takes (``name``, ``clipnorm``, ...).
    """

    def __init__(self, learning_rate: Any = 1e-3, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, name: str = "adabelief", **kwargs: Any):
        for key, value in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"AdaBelief {key} must be in [0, 1); Received: {key}={value}")
        if not epsilon > 0:
            raise ValueError(f"AdaBelief epsilon must be > 0; Received: epsilon={epsilon}")
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def build(self, var_list: Any) -> None:
        if self.built:
            return
        super().build(var_list)
        # add_variable_from_reference exists in every Keras 3 (add_optimizer_variables only in late ones)
        self._means = [self.add_variable_from_reference(v, "mean") for v in var_list]
        self._beliefs = [self.add_variable_from_reference(v, "belief") for v in var_list]

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        g = ops.cast(gradient, dtype)
        i = self._get_variable_index(variable)
        m, s = self._means[i], self._beliefs[i]
        b1, b2 = ops.cast(self.beta_1, dtype), ops.cast(self.beta_2, dtype)
        self.assign(m, ops.add(ops.multiply(m, b1), ops.multiply(g, 1.0 - b1)))
        deviation = ops.subtract(g, m)
        self.assign(s, ops.add(ops.add(ops.multiply(s, b2), ops.multiply(ops.square(deviation), 1.0 - b2)),
                               self.epsilon))
        t = ops.cast(self.iterations + 1, dtype)
        mean = ops.divide(m, 1.0 - ops.power(b1, t))
        scale = ops.add(ops.sqrt(ops.divide(s, 1.0 - ops.power(b2, t))), self.epsilon)
        self.assign_sub(variable, ops.multiply(lr, ops.divide(mean, scale)))

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon})
        return config
