"""gradlab: reproducible experiments on vanishing and exploding gradients in recurrent networks."""
