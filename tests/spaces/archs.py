"""Architecture strings shared by the space and proxy tests (one definition each)."""

#: NAS-Bench-201 cell with every op: two 3x3 convs, a 1x1 conv, a skip, a pool and a none.
NB201_MIXED = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
#: NAS-Bench-201 cell whose output is zero (every edge ``none``).
NB201_ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
#: NAS-Bench-201 cell with a 3x3 conv on every edge (the largest network).
NB201_ALL_CONV3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
#: Five 3x3 convs and one skip: the CIFAR-100 optimum of the NAS-Bench-201 table.
NB201_FIVE_CONV3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"

#: The Tiny-NanoBench example cell of the space's docstring.
TINYNANO_EXAMPLE = "input>1;dwconv3x3>2;split>3,4;maxpool3x3>5;atten>5;output"
#: The Tiny-NanoBench identity cell (the fixed part of the network).
TINYNANO_IDENTITY = "input>1;none>2;output"
