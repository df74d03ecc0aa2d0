"""Pure tensor operations: tiling, blur kernels, colour conversions."""
