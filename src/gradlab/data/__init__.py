"""The generated data sets on disk and the LightningDataModule that serves them."""
