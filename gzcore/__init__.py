"""gzcore: Galaxy Zoo 2 morphology with CNNs that obey the decision tree."""
__version__ = "0.1.0"
