"""tfnas.spaces: search spaces; importing this package registers the built-in ones.

One import per space module (keep the list one line per module, sorted by when it was added).
"""

from tfnas.spaces import nb201  # noqa: F401  (registers "nb201")
from tfnas.spaces import tinynano  # noqa: F401  (registers "tinynano")
from tfnas.spaces import darts  # noqa: F401  (registers "darts")
from tfnas.spaces import zen  # noqa: F401  (registers "zen")
