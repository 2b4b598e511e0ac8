"""The verification stage: the published predictions; the checks of claims, reruns, checksums."""
