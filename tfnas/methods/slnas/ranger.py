"""Ranger: RAdam with Lookahead, the optimiser of the SLNAS controller, as a Keras 3 optimizer.

RAdam (Liu et al., ICLR 2020, https://arxiv.org/abs/1908.03265, Algorithm 2) rectifies Adam's
adaptive step while the variance estimate is unreliable; Lookahead (Zhang et al., NeurIPS 2019,
https://arxiv.org/abs/1907.08610) keeps slow weights ``phi`` and every ``k`` steps sets
``phi <- phi + alpha (theta - phi)`` and ``theta <- phi``. Per variable, at step ``t``::

    m = b1 m + (1 - b1) g          v = b2 v + (1 - b2) g^2
    rho_inf = 2 / (1 - b2) - 1     rho_t = rho_inf - 2 t b2^t / (1 - b2^t)
    rho_t > threshold:  theta -= lr r_t m / ((1 - b1^t)(sqrt(v) + eps)),
                        r_t = sqrt((1 - b2^t)(rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
    otherwise:          theta -= lr m / (1 - b1^t)

The defaults are those of the Ranger release the SLNAS code imports (lessw2020's Ranger:
``betas = (0.95, 0.999)``, ``eps = 1e-5``, rectification threshold 5, ``k = 6``, ``alpha = 0.5``).
Gradient centralisation, which later Ranger releases switch on by default, is not applied.

Example:

>>> opt = Ranger(learning_rate=3.5e-5)
>>> opt.apply_gradients(zip(grads, variables))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, Dict

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfnas")
class Ranger(keras.optimizers.Optimizer):
    """RAdam + Lookahead (see the module docstring for the update).

    Args:
      learning_rate: step size (a float or a Keras schedule).
      beta_1, beta_2: decay of the first and second moment estimates.
      epsilon: added to ``sqrt(v)`` in the rectified step.
      sma_threshold: length of the approximated simple moving average above which the adaptive,
        rectified step is used (before that: momentum SGD with bias correction).
      lookahead_steps: ``k``, fast steps between two slow-weight synchronisations.
      lookahead_alpha: ``alpha``, how far the slow weights move toward the fast ones.
      **kwargs: the arguments every Keras optimizer takes (``name``, ``clipnorm``, ...).
    """

    def __init__(self, learning_rate: Any = 1e-3, beta_1: float = 0.95, beta_2: float = 0.999,
                 epsilon: float = 1e-5, sma_threshold: float = 5.0, lookahead_steps: int = 6,
                 lookahead_alpha: float = 0.5, name: str = "ranger", **kwargs: Any):
        for key, value in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"Ranger {key} must be in [0, 1); Received: {key}={value}")
        if not 0.0 <= lookahead_alpha <= 1.0:
            raise ValueError(f"Ranger lookahead_alpha must be in [0, 1]; Received: lookahead_alpha={lookahead_alpha}")
        if epsilon <= 0:
            raise ValueError(f"Ranger epsilon must be > 0; Received: epsilon={epsilon}")
        if int(lookahead_steps) < 1:
            raise ValueError(f"Ranger lookahead_steps must be >= 1; Received: lookahead_steps={lookahead_steps}")
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.sma_threshold = float(sma_threshold)
        self.lookahead_steps, self.lookahead_alpha = int(lookahead_steps), float(lookahead_alpha)

    def build(self, var_list: Any) -> None:
        if self.built:
            return
        super().build(var_list)
        # add_variable_from_reference exists in every Keras 3 (add_optimizer_variables only in late ones)
        self._momentums, self._velocities, self._slow = (
            [self.add_variable_from_reference(v, name) for v in var_list] for name in ("momentum", "velocity", "slow"))

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        g = ops.cast(gradient, dtype)
        i = self._get_variable_index(variable)
        m, v, slow = self._momentums[i], self._velocities[i], self._slow[i]
        b1, b2 = ops.cast(self.beta_1, dtype), ops.cast(self.beta_2, dtype)
        # The slow weights start at the variable's value (filled at the first step, as Ranger does).
        self.assign(slow, ops.where(ops.equal(self.iterations, 0), variable, slow))
        self.assign(m, ops.add(ops.multiply(m, b1), ops.multiply(g, 1.0 - b1)))
        self.assign(v, ops.add(ops.multiply(v, b2), ops.multiply(ops.square(g), 1.0 - b2)))
        t = ops.cast(self.iterations + 1, dtype)
        b1_t, b2_t = ops.power(b1, t), ops.power(b2, t)
        rho_inf = 2.0 / (1.0 - b2) - 1.0
        rho = rho_inf - 2.0 * t * b2_t / (1.0 - b2_t)
        ratio = (1.0 - b2_t) * (rho - 4.0) * (rho - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho)
        rectified = ops.sqrt(ops.maximum(ratio, 0.0)) * m / (ops.sqrt(v) + self.epsilon)
        step = ops.where(rho > self.sma_threshold, rectified, m) / (1.0 - b1_t)
        self.assign_sub(variable, ops.multiply(lr, step))
        sync = ops.equal(ops.mod(self.iterations + 1, self.lookahead_steps), 0)
        moved = ops.add(slow, ops.multiply(ops.subtract(variable, slow), self.lookahead_alpha))
        self.assign(slow, ops.where(sync, moved, slow))
        self.assign(variable, ops.where(sync, moved, variable))

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                       "sma_threshold": self.sma_threshold, "lookahead_steps": self.lookahead_steps,
                       "lookahead_alpha": self.lookahead_alpha})
        return config
