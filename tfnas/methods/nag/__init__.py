"""NAG (neural architecture generator): a conditional GAN over DAG cells and RS-NAG, its random
search over generated cells (``nag`` on NAS-Bench-201, ``nag_supernet`` in the paper's setting on the
NASNet DAG space). Docstrings cite "the NAG spec": the description of NAG (paper and authors' code)
tfnas was built from; it is not shipped."""

from tfnas.methods.nag.gan import CellData, GanTrainer
from tfnas.methods.nag.models import DagDiscriminator, DagGenerator
from tfnas.methods.nag.paper import NagSupernetSearch
from tfnas.methods.nag.search import NagSearch

__all__ = ["CellData", "DagDiscriminator", "DagGenerator", "GanTrainer", "NagSearch", "NagSupernetSearch"]
