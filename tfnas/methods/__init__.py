"""Search methods; importing this package registers the built-in ones."""

from tfnas.methods import random_search  # noqa: F401  ("rand")
from tfnas.methods import siamese  # noqa: F401  ("siamese", "predictor")
from tfnas.methods import brp  # noqa: F401  ("brp_nas")
from tfnas.methods import evolution  # noqa: F401  ("evolution")
from tfnas.methods import proxy_corr  # noqa: F401  ("proxy_corr")
from tfnas.methods import relativenas  # noqa: F401  ("relativenas")
from tfnas.methods.slnas import nb201  # noqa: F401  ("slnas_controller")
from tfnas.methods.slnas import search  # noqa: F401  ("slnas")
from tfnas.methods.nag import search as nag_search  # noqa: F401  ("nag")
