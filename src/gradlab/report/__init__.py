"""The study's HTML report (its figures and tables) and its W&B Report."""
