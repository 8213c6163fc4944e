"""One entry per SSL method: :data:`METHODS`, shaped like the predictors' registry
(:data:`realnet.methods.predictors.PREDICTORS`).

A :class:`Method` says what the model of a run holds for it (an EMA target encoder, an extra head
such as SwAV's prototypes), which predictor it takes (the contrastive methods take none:
``identity``, selected for them), which ``method.*`` keys it reads, and how its loss of one step
is built from the ``[method]`` section (``step_loss``: a function of the model and the augmented
views returning a :class:`realnet.methods.losses.StepOutput`). Nothing else in realnet branches
on a method's name.

Adding a method: write its step loss (``model, x1, x2, *small -> StepOutput``), add one
``Method(...)`` line to :data:`METHODS`, and copy ``test_a_new_method_is_one_registry_entry``
(``tests/test_objectives.py``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable

from torch import nn

from realnet.methods.contrastive import Prototypes, simclr_step_loss, swav_step_loss
from realnet.methods.losses import LOSSES, ssl_loss

__all__ = ["Method", "METHODS", "LOSS_KEYS", "EMA_KEYS", "SWAV_KEYS", "SWAV_SMALL_KEYS"]

#: ``method.*`` keys of the loss between the predictor and the target (BYOL, SimSiam).
LOSS_KEYS = ("loss", "symmetric", "stop_grad")
#: ``method.*`` keys of an EMA target.
EMA_KEYS = ("ema", "ema_schedule", "target_init_copy")
#: ``method.*`` keys of SwAV; the small crops' size and area matter only with small crops.
SWAV_KEYS = ("swav_prototypes", "swav_epsilon", "swav_iterations", "swav_freeze_steps",
             "swav_small_crops", "swav_small_size", "swav_small_scale")
SWAV_SMALL_KEYS = ("swav_small_size", "swav_small_scale")


@dataclass(frozen=True)
class Method:
    """An SSL method (module docstring). ``step_loss(method_cfg)``: the loss of one step for the
    ``[method]`` section; ``ema_target``: a separate target encoder updated by EMA (BYOL; else the
    target is the online encoder); ``only_predictor``: the one predictor it takes (selected for
    it), None for any; ``temperature``: the default of ``method.temperature`` (None: it has
    none); ``extra_head(proj_dim, method_cfg)``: a module the model holds besides the encoders and
    the predictor; ``multicrop``: it takes small crops (``method.swav_small_crops``);
    ``trains_target``: the gradient may flow into its target (``method.stop_grad=false``);
    ``keys``: the ``method.*`` keys it reads besides ``name``, and ``unused_keys(method_cfg)`` those
    of them that a given setting leaves unread; ``frozen_head_steps(method_cfg)``: the first steps
    in which the extra head does not learn."""

    name: str
    step_loss: Callable[[Any], Callable[..., Any]]
    ema_target: bool = False
    only_predictor: str | None = None
    temperature: float | None = None
    extra_head: Callable[[int, Any], nn.Module] | None = None
    multicrop: bool = False
    trains_target: bool = False
    keys: tuple[str, ...] = field(default_factory=tuple)
    frozen_head_steps: Callable[[Any], int] = lambda m: 0
    unused_keys: Callable[[Any], tuple[str, ...]] = lambda m: ()

    def small_crops(self, m: Any) -> int:
        """How many small crops a step draws for the ``[method]`` section ``m``."""
        return m.swav_small_crops if self.multicrop else 0


def _predictor_loss(m: Any) -> Callable[..., Any]:
    return partial(ssl_loss, loss_fn=LOSSES[m.loss], stop_grad=m.stop_grad, symmetric=m.symmetric)


METHODS: dict[str, Method] = {
    "byol": Method("byol", _predictor_loss, ema_target=True, keys=LOSS_KEYS + EMA_KEYS),
    "simsiam": Method("simsiam", _predictor_loss, trains_target=True, keys=LOSS_KEYS),
    "simclr": Method("simclr", lambda m: partial(simclr_step_loss, temperature=m.tau),
                     only_predictor="identity", temperature=0.5, keys=("temperature",)),
    "swav": Method("swav",
                   lambda m: partial(swav_step_loss, temperature=m.tau, epsilon=m.swav_epsilon,
                                     iterations=m.swav_iterations),
                   only_predictor="identity", temperature=0.1,
                   extra_head=lambda d, m: Prototypes(d, m.swav_prototypes), multicrop=True,
                   keys=("temperature",) + SWAV_KEYS, frozen_head_steps=lambda m: m.swav_freeze_steps,
                   unused_keys=lambda m: () if m.swav_small_crops else SWAV_SMALL_KEYS),
}
