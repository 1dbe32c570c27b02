"""The network around a cell: fused kernel for training, the unrolled twin for probing, and the regulariser on it."""
