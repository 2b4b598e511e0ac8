"""The data stage: the decoded TinyImageNet store, its transforms and batched augmentation."""
