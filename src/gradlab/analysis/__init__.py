"""What a trained network's own vectors show: its Lyapunov spectrum, the angles of its states and gradients."""
