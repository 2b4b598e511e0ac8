"""Reference artifact: ConvNeXt-Tiny fine-tuned on TinyImageNet, baseline vs improved.

The package reimplements what the two published notebooks ran; `config/config.yaml` holds every
hyperparameter and every published number.
"""

__version__ = "0.1.0"
