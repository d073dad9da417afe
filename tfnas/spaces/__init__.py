"""tfnas.spaces: search spaces, one subpackage each; importing this package registers the built-in ones.

One import per space package (keep the list one line per space, sorted by when it was added);
shared Keras layers are in :mod:`tfnas.spaces.ops`.
"""

from tfnas.spaces import nb201  # noqa: F401  (registers "nb201")
from tfnas.spaces import tinynano  # noqa: F401  (registers "tinynano")
from tfnas.spaces import darts  # noqa: F401  (registers "darts")
from tfnas.spaces import zen  # noqa: F401  (registers "zen")
from tfnas.spaces import lite  # noqa: F401  (registers "lite")
from tfnas.spaces import nasnet_dag  # noqa: F401  (registers "nasnet_dag")
