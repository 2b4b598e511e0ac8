"""Reference artifact: ConvNeXt-Tiny fine-tuned on TinyImageNet, baseline vs improved.

The package reimplements what the two published notebooks ran; `config/config.yaml` holds every
hyperparameter a user tunes, `config/study.yaml` every published number.
"""

import warnings

# huggingface_hub (imported by timm and datasets) imports tqdm.auto, which warns "IProgress not
# found" inside a Jupyter kernel without ipywidgets. The package shows no widget progress bars
# (the notebook runs with progress off), so the warning says nothing to a reader of the notebook.
warnings.filterwarnings("ignore", message="IProgress not found", module="tqdm")

__version__ = "0.1.0"
