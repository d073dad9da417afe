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

#: Published searched models. ZenNet CIFAR models: idstcv/ZenNAS, ZenNet/zennet_cifar_model_size
#: {05M,1M,2M}_res32.txt (README: 0.5M / 1.0M / 2.0M params, 140M / 162M / 487M FLOPs).
ZENNET = {
    0.5: ("SuperConvK3BNRELU(3,64,1,1)SuperResK1K5K1(64,168,1,16,3)SuperResK1K3K1(168,80,2,32,4)"
          "SuperResK1K5K1(80,112,2,16,3)SuperResK1K5K1(112,144,1,24,3)SuperResK1K3K1(144,32,2,40,1)"
          "SuperConvK1BNRELU(32,512,1,1)", 140e6),
    1.0: ("SuperConvK3BNRELU(3,88,1,1)SuperResK1K7K1(88,120,1,16,1)SuperResK1K7K1(120,192,2,16,3)"
          "SuperResK1K5K1(192,224,1,24,4)SuperResK1K5K1(224,96,2,24,2)SuperResK1K3K1(96,168,2,40,3)"
          "SuperResK1K3K1(168,112,1,48,3)SuperConvK1BNRELU(112,512,1,1)", 162e6),
    2.0: ("SuperConvK3BNRELU(3,32,1,1)SuperResK1K5K1(32,120,1,40,1)SuperResK1K5K1(120,176,2,32,3)"
          "SuperResK1K7K1(176,272,1,24,3)SuperResK1K3K1(272,176,1,56,3)SuperResK1K3K1(176,176,1,64,4)"
          "SuperResK1K5K1(176,216,2,40,2)SuperResK1K3K1(216,72,2,56,2)SuperConvK1BNRELU(72,512,1,1)", 487e6),
}
#: Incorporated-NAS CIFAR 1M models: SeoulTech-HCIRLab/IncorporatedNAS, EZenNet/ezennet_cifa_model_size
#: 1M_res32_s.txt and ezennet_cifar_model_size1M_res32_l.txt, found with --max_layers 18 and the
#: effectiveness filter at 0.5 (scripts/Combine_NAS_cifa_params1M.sh).
INCORPORATED_S = ("SuperConvK3BNRELU(3,56,1,1)SuperResK7K7(56,48,1,8,5)SuperResK1K3K1(48,200,2,32,3)"
                  "SuperResK1K5K1(200,160,1,24,3)SuperResK1K7K1(160,624,2,16,4)SuperResK1K3K1(624,48,2,40,1)"
                  "SuperConvK1BNRELU(48,304,1,1)")
INCORPORATED_L = ("SuperConvK3BNRELU(3,240,1,1)SuperResK1K5K1(240,96,1,24,3)SuperResK1K7K1(96,240,1,24,3)"
                  "SuperResK1K7K1(240,240,1,24,3)SuperResK1K3K1(240,48,2,64,1)SuperResK7K7(48,32,2,8,4)"
                  "SuperResK1K5K1(32,120,2,24,2)SuperConvK1BNRELU(120,160,1,1)")
#: Zen: every block family (all four layer kinds: dense / depthwise, stride 1 / 2), a stride-2
#: depthwise unit, an IDW unit with b != cout (projection on its second unit) and a stride-2 1x1
#: conv block.
ZEN_MIXED = ("SuperConvK3BNRELU(3,16,1,1)SuperResIDWE2K5(16,24,2,16,1)SuperResK1K7K1(24,32,1,8,1)"
             "SuperResK5K5(32,32,2,16,2)SuperConvK1BNRELU(32,48,2,1)")
#: A stem and one residual block.
ZEN_SMALL = "SuperConvK3BNRELU(3,8,1,1)SuperResK3K3(8,16,2,8,1)"
