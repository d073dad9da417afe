"""SLNAS (stage and lite search): the two-stage LSTM controller, the GA baseline, their offline
search of NAS-Bench-201 (``slnas_controller``) and the weight-sharing search of the lite space
(``slnas``). Docstrings cite "the spec": the description of SLNAS (paper and authors' code) tfnas was
built from; it is not shipped."""

from tfnas.methods.slnas.controller import OpController, ReinforceController, StageController, make_optimizer
from tfnas.methods.slnas.ga import GeneticController, lite_gene_bounds
from tfnas.methods.slnas.heads import ConnectionHead, OpHead, bounded_logits, choose
from tfnas.methods.slnas.nb201 import ControllerSearch
from tfnas.methods.slnas.ranger import Ranger
from tfnas.methods.slnas.search import SlnasSearch, pick_best

__all__ = ["ConnectionHead", "ControllerSearch", "GeneticController", "OpController", "OpHead", "Ranger",
           "ReinforceController", "SlnasSearch", "StageController", "bounded_logits", "choose",
           "lite_gene_bounds", "make_optimizer", "pick_best"]
