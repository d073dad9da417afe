"""Padding arithmetic that reproduces PyTorch's symmetric convolution padding in Keras.

TensorFlow's ``"same"`` padding puts the extra row/column after the image when the stride is 2;
PyTorch pads ``dilation * (kernel_size - 1) // 2`` on each side. These helpers compute output
sizes under the PyTorch rule and turn a (depthwise) convolution into an explicit pad, an
optional subsampling and a Keras/TF convolution that give the same result (the "padding plan").
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

from keras import ops

__all__ = [
    "SpatialConvPlan",
    "apply_spatial_conv",
    "conv_output_shape",
    "conv_output_size",
    "padded_shape",
    "spatial_conv_plan",
    "symmetric_pad",
]

Shape = Tuple[Optional[int], ...]
#: ``(padding, explicit_pad, subsample, conv_strides, conv_dilation)``, see :func:`spatial_conv_plan`.
SpatialConvPlan = Tuple[str, int, int, int, int]


def conv_output_size(size: Optional[int], kernel_size: int, strides: int, dilation: int) -> Optional[int]:
    """Spatial output size of a convolution with symmetric padding ``dilation * (k - 1) // 2``."""
    if size is None:
        return None
    pad = dilation * (kernel_size - 1) // 2
    return (size + 2 * pad - dilation * (kernel_size - 1) - 1) // strides + 1


def symmetric_pad(x, pad: int):
    """Zero-pads the two spatial axes of ``(B, H, W, C)`` by ``pad`` on each side."""
    return ops.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])


def conv_output_shape(
    input_shape: Sequence[Optional[int]], kernel_size: int, strides: int = 1, dilation: int = 1
) -> Tuple[Optional[int], Optional[int]]:
    """Spatial ``(H', W')`` of a symmetric-padded convolution on ``(H, W)`` (used by FLOP counts)."""
    h, w = input_shape[0], input_shape[1]
    return conv_output_size(h, kernel_size, strides, dilation), conv_output_size(w, kernel_size, strides, dilation)


def spatial_conv_plan(kernel_size: int, strides: int, dilation: int, owner: str) -> SpatialConvPlan:
    """How a (depthwise) convolution reproduces PyTorch's symmetric padding in Keras.

    Returns ``(padding, explicit_pad, subsample, conv_strides, conv_dilation)``: pad both spatial
    axes by ``explicit_pad`` zeros, keep every ``subsample``-th row/column, then convolve with
    ``padding``/``conv_strides``/``conv_dilation``.

    * stride 1: ``"same"`` (symmetric for an odd effective kernel);
    * stride ``s > 1`` without dilation: pad ``p = (k - 1) // 2``, then a ``"valid"`` stride-``s`` conv;
    * stride ``s > 1`` with dilation ``d`` (``d % s == 0``): TensorFlow has no strided dilated
      depthwise conv, but ``y[i] = sum_k x_pad[s*i + d*k]`` equals a stride-1 conv with dilation
      ``d / s`` over ``x_pad[::s]``, so pad ``p = d * (k - 1) // 2``, subsample by ``s`` and
      convolve ``"valid"``. Output sizes equal PyTorch's ``floor((H + 2p - d(k-1) - 1) / s) + 1``.
    """
    if strides == 1:
        return "same", 0, 1, 1, dilation
    pad = dilation * (kernel_size - 1) // 2
    if dilation == 1:
        return "valid", pad, 1, strides, 1
    if dilation % strides:
        raise ValueError(
            f"{owner}: a strided dilated convolution needs `dilation` to be a multiple of `strides`. "
            f"Received: strides={strides}, dilation={dilation}"
        )
    return "valid", pad, strides, 1, dilation // strides


def apply_spatial_conv(x, conv, plan: SpatialConvPlan):
    """``conv`` applied to ``x (B, H, W, C)`` after the explicit padding and subsampling of ``plan``."""
    _, pad, subsample, _, _ = plan
    if pad:
        x = symmetric_pad(x, pad)
    if subsample > 1:
        x = x[:, ::subsample, ::subsample, :]
    return conv(x)


def padded_shape(input_shape: Shape, plan: SpatialConvPlan) -> Shape:
    """Shape a conv built by ``spatial_conv_plan`` sees after explicit padding and subsampling."""
    _, pad, subsample, _, _ = plan
    b, h, w, c = input_shape

    def size(n: Optional[int]) -> Optional[int]:
        return None if n is None else -(-(n + 2 * pad) // subsample)

    return (b, size(h), size(w), c)

