"""The networks: a timm ConvNeXt backbone, an optional attention, a linear head.

The backbone is timm's model with ``num_classes=0`` (pool -> ``head.norm``) and the
``Linear(768, 200)`` sits outside it: the same function as the baseline notebook's replaced
``head.fc`` (``tests/test_models.py``). The published heads are ``linear`` and ``token_attention``
(attention on the pooled token); the ablation ``spatial_attention`` attends over the final
stage's token map before the backbone pools it. Pretrained weights always come through timm,
from the hub or from a local ``pretrained_file`` (its ``pretrained_cfg`` ``file`` source).
"""

from __future__ import annotations

import contextlib
import difflib
import logging
from collections.abc import Callable, Iterator
from logging.handlers import BufferingHandler
from pathlib import Path

import timm
import torch
from torch import nn

from convnext_tinyimagenet.errors import ArtifactError

log = logging.getLogger(__name__)

HEADS = ("linear", "token_attention", "spatial_attention")
DEFAULT_DROPOUT = 0.2  # the notebook's value for both dropouts of the attention module


class ModelError(ArtifactError):
    """A model config, weights file or trainable-module list that cannot be used."""


class TokenAttention(nn.Module):
    """The published "self-attention" module, applied to one pooled feature vector.

    The input ``(B, D)`` is a sequence of ONE token, so the softmax is always exactly 1 and the
    module equals ``drop_out(drop_attn(1) · v(x))``: q and k never influence the output. It is
    kept as published (same computation, parameters and random draws); the attention dropout
    acts per sample, the output dropout element-wise.
    """

    def __init__(self, dim: int, attention_dropout: float = DEFAULT_DROPOUT,
                 output_dropout: float = DEFAULT_DROPOUT) -> None:  # fmt: skip
        super().__init__()
        self.dim = dim
        self.scale = dim**-0.5
        self.q, self.k, self.v = (nn.Linear(dim, dim) for _ in "qkv")  # created in this order
        self.attn_drop = nn.Dropout(attention_dropout)
        self.out_drop = nn.Dropout(output_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map pooled features ``(B, D)`` to ``(B, D)``."""
        tokens = x.unsqueeze(1)  # (B, 1, D): one token per sample, as the notebook did
        q, k, v = self.q(tokens), self.k(tokens), self.v(tokens)
        scores = q @ k.transpose(-2, -1) * self.scale  # (B, 1, 1)
        weights = self.attn_drop(scores.softmax(dim=-1))
        return self.out_drop(weights @ v).squeeze(1)


class SpatialAttention(nn.Module):
    """Pre-norm multi-head self-attention over the tokens of the final feature map, residual.

    A ``(B, D, H, W)`` map (7x7 = 49 tokens at 224 px; one token on 32 px inputs, where the
    softmax is again exactly 1) becomes ``x + MHA(LN(x))`` over its ``H·W`` tokens, is pooled by
    `pool` (the backbone's own global pool and ``head.norm``, which stay the backbone's) and then
    dropped out element-wise: the output dropout acts on the linear head's input, as
    TokenAttention's does; the attention dropout acts on the attention weights. New parameters
    at D = 768: LayerNorm 2·768 + in/out projections 4·768² + 4·768 = 2,363,904.
    """

    def __init__(self, dim: int, heads: int, attention_dropout: float = DEFAULT_DROPOUT,
                 output_dropout: float = DEFAULT_DROPOUT) -> None:  # fmt: skip
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=attention_dropout, batch_first=True)
        self.out_drop = nn.Dropout(output_dropout)

    def forward(self, x: torch.Tensor, pool: Callable[[torch.Tensor], torch.Tensor]
                ) -> torch.Tensor:  # fmt: skip
        """Map a feature map ``(B, D, H, W)`` to pooled features ``(B, D)``."""
        if x.ndim != 4:
            raise ModelError(
                f"spatial_attention needs the backbone's (B, D, H, W) feature map, got shape "
                f"{tuple(x.shape)}: pooled features (e.g. cached for another head) have no tokens"
            )
        b, d, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (B, H·W, D)
        normed = self.norm(tokens)
        attended, _ = self.attn(normed, normed, normed, need_weights=False)
        x = (tokens + attended).transpose(1, 2).reshape(b, d, h, w)
        return self.out_drop(pool(x))


class Classifier(nn.Module):
    """Backbone features -> attention (token, spatial or identity) -> linear head."""

    def __init__(self, backbone: nn.Module, attention: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.backbone = backbone
        self.attention = attention
        self.head = head

    @property
    def num_features(self) -> int:
        """Width of the backbone's pooled feature (the head's input)."""
        return self.head.in_features

    @property
    def spatial(self) -> bool:
        """Whether the attention acts on the final feature map, before the backbone pools it."""
        return isinstance(self.attention, SpatialAttention)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The head's input from images ``(B, 3, H, W)``: pooled features ``(B, num_features)``,
        or for a spatial head the final map ``(B, D, H/32, W/32)``; while training, the frozen
        stem and leading stages (improved run: 0-2) run under ``no_grad``, so that nothing of
        theirs is kept for the backward pass."""
        frozen = self.frozen_stages() if torch.is_grad_enabled() else 0
        backbone = self.backbone
        if frozen == 0:
            return backbone.forward_features(x) if self.spatial else backbone(x)
        with torch.no_grad():
            x = backbone.stem(x)
            for stage in backbone.stages[:frozen]:
                x = stage(x)
        for stage in backbone.stages[frozen:]:
            x = stage(x)
        x = backbone.norm_pre(x)
        return x if self.spatial else backbone.forward_head(x)

    def frozen_stages(self) -> int:
        """Leading stages of a ConvNeXt-like backbone without trainable parameters (0 when the
        stem trains or the backbone is of another kind)."""
        backbone = self.backbone
        parts = ("stem", "stages", "norm_pre", "forward_head")
        if not all(hasattr(backbone, a) for a in parts) or _trains(backbone.stem):
            return 0
        stages = list(backbone.stages)
        return next((i for i, stage in enumerate(stages) if _trains(stage)), len(stages))

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        """Logits from :meth:`features` (what trains on cached frozen-backbone features)."""
        if self.spatial:
            return self.head(self.attention(feats, self.backbone.forward_head))
        return self.head(self.attention(feats))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)`` of images ``(B, 3, H, W)``."""
        return self.forward_head(self.features(x))


def _trains(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters())


def create_model(model_cfg: dict, num_classes: int) -> Classifier:
    """An experiment's network (its ``model`` section), in training mode, all of it trainable."""
    head_kind = model_cfg.get("head")
    if head_kind not in HEADS:
        raise ModelError(f"model.head: unknown head {head_kind!r}, expected one of {list(HEADS)}")
    if int(num_classes) < 1:
        raise ModelError(f"num_classes must be at least 1, got {num_classes}")
    tag, pretrained = str(model_cfg.get("tag", "")), bool(model_cfg.get("pretrained", False))
    backbone = create_backbone(tag, pretrained, model_cfg.get("pretrained_file"))
    dim = int(getattr(backbone, "head_hidden_size", None) or backbone.num_features)  # pre-logits
    attention: nn.Module = nn.Identity()
    if head_kind == "token_attention":
        attention = TokenAttention(dim, *_dropouts(model_cfg))
    elif head_kind == "spatial_attention":
        attention = _spatial_attention(model_cfg, backbone)
    return Classifier(backbone, attention, nn.Linear(dim, int(num_classes)))


def _spatial_attention(model_cfg: dict, backbone: nn.Module) -> SpatialAttention:
    """The spatial head for a ConvNeXt-like backbone, whose final map has `num_features`
    channels; its number of heads must divide them (768 = 8 heads of 96)."""
    parts = ("stem", "stages", "norm_pre", "forward_features", "forward_head")
    if not all(hasattr(backbone, a) for a in parts):
        raise ModelError(
            f"model.head: spatial_attention needs a ConvNeXt-like backbone ({', '.join(parts)}); "
            f"{model_cfg.get('tag')!r} is a {type(backbone).__name__}"
        )
    dim, heads = int(backbone.num_features), model_cfg.get("attention_heads")
    if isinstance(heads, bool) or not isinstance(heads, int) or heads < 1 or dim % heads:
        raise ModelError(
            f"model.attention_heads: a whole number of heads that divides the feature width "
            f"{dim} is required for spatial_attention, got {heads!r}"
        )
    return SpatialAttention(dim, heads, *_dropouts(model_cfg))


def create_backbone(tag: str, pretrained: bool, pretrained_file: str | Path | None) -> nn.Module:
    """A timm model without classifier (``num_classes=0``) of a full tag or bare architecture;
    without `pretrained`, `pretrained_file` is ignored (a smoke override of ``pretrained`` alone
    suffices), with it the file (safetensors or torch) replaces the hub download."""
    check_tag(tag)
    if not pretrained:
        if pretrained_file:
            log.warning("model.pretrained is false: ignoring pretrained_file %s", pretrained_file)
        return timm.create_model(tag, pretrained=False, num_classes=0)
    if pretrained_file:
        return _backbone_from_file(tag, Path(pretrained_file).expanduser())
    try:
        return timm.create_model(tag, pretrained=True, num_classes=0)
    # hub/network/cache errors come in many types (OSError, HfHubHTTPError...)
    except Exception as exc:
        raise ModelError(
            f"could not load the pretrained weights of {tag!r} from the Hugging Face hub "
            f"({type(exc).__name__}: {exc}). Without network access, download its weights "
            f"elsewhere ({_weights_source(tag)}) and set model.pretrained_file to the local path"
        ) from exc


def _weights_source(tag: str) -> str:
    cfg = timm.models.get_pretrained_cfg(tag)
    if cfg is not None and cfg.hf_hub_id:
        return f"model.safetensors of https://huggingface.co/{cfg.hf_hub_id}"
    return (cfg.url if cfg is not None else "") or f"the weights of {tag}"


def check_tag(tag: str) -> None:
    """Raise ModelError unless timm knows the architecture and, if given, its pretrained tag."""
    arch, _, pretrained_tag = tag.partition(".")
    if arch and timm.is_model(arch):
        known = timm.list_pretrained(f"{arch}.*") if pretrained_tag else [tag]
        if tag in known:
            return
        raise ModelError(
            f"model.tag: timm has no pretrained tag {tag!r}; tags of {arch}: {', '.join(known)}"
        )
    close = difflib.get_close_matches(tag, timm.list_pretrained() + timm.list_models(), n=5)
    hint = f"; close matches: {', '.join(close)}" if close else ""
    raise ModelError(f"model.tag: timm has no model {tag!r}{hint}")


def _backbone_from_file(tag: str, path: Path) -> nn.Module:
    """Create the backbone with timm loading `path` in place of the tag's download."""
    if not path.is_file():
        raise ModelError(f"model.pretrained_file: no such file {path} (weights for {tag!r})")
    try:
        with _load_report() as problems:
            # timm's `file` source: same checkpoint cleaning, key remapping and classifier drop
            # as for hub weights, with no network (the file outranks url and hub in the cfg).
            backbone = timm.create_model(
                tag, pretrained=True, num_classes=0, pretrained_cfg_overlay={"file": str(path)}
            )
    except Exception as exc:  # corrupt file, wrong architecture (shape mismatch), bad format
        raise ModelError(
            f"model.pretrained_file: cannot load {path} into {tag!r} ({type(exc).__name__}: {exc})"
        ) from exc
    if problems:
        # timm loads non-strictly once the classifier is dropped, so a file whose keys do not
        # match (another model, an extra prefix) would otherwise leave random weights silently.
        raise ModelError(
            f"model.pretrained_file: {path} does not match {tag!r}: " + " ".join(problems)
        )
    return backbone


@contextlib.contextmanager
def _load_report() -> Iterator[list[str]]:
    """The missing/unexpected-key reports that timm's load_pretrained only logs, gathered within
    the block into the yielded list (filled when the block ends)."""
    logger, handler = logging.getLogger("timm.models._builder"), BufferingHandler(2**31)
    level, problems = logger.level, []
    logger.addHandler(handler)
    if not logger.isEnabledFor(logging.INFO):
        logger.setLevel(logging.INFO)  # the missing-keys report is logged at INFO
    try:
        yield problems
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        messages = [record.getMessage() for record in handler.buffer]
        problems += [m for m in messages if m.startswith(("Missing keys", "Unexpected keys"))]


def _dropouts(model_cfg: dict) -> tuple[float, float]:
    """The attention heads' ``attention_dropout`` and ``output_dropout``, checked."""
    return _probability(model_cfg, "attention_dropout"), _probability(model_cfg, "output_dropout")


def _probability(model_cfg: dict, key: str) -> float:
    """A dropout probability from the model config (default 0.2), checked."""
    value = model_cfg.get(key)
    p = DEFAULT_DROPOUT if value is None else float(value)
    if not 0.0 <= p < 1.0:
        raise ModelError(f"model.{key}: dropout probability must be in [0, 1), got {value!r}")
    return p


def configure_trainable(model: nn.Module, groups: list[dict]) -> list[dict]:
    """Freeze the model except the listed modules; return their AdamW parameter groups. `groups`:
    ``[{name, modules: [dotted paths, e.g. "backbone.stages.3"], lr, weight_decay}]``."""
    if not groups:
        raise ModelError("trainable: no parameter groups, nothing would train")
    for param in model.parameters():
        param.requires_grad_(False)
    owner: dict[int, str] = {}  # id(parameter) -> group that claimed it
    return [_param_group(model, group, owner) for group in groups]


def _param_group(model: nn.Module, group: dict, owner: dict[int, str]) -> dict:
    """One AdamW parameter group, its parameters made trainable and recorded in `owner`."""
    name = _group_field(group, "name", "?")
    params = []
    for path in _group_field(group, "modules", name):
        for param in _submodule(model, str(path), name).parameters():
            if id(param) in owner:
                raise ModelError(
                    f"trainable: group {name!r} module {path!r} shares parameters with "
                    f"group {owner[id(param)]!r}; each parameter may belong to one group"
                )
            owner[id(param)] = name
            param.requires_grad_(True)
            params.append(param)
    if not params:
        raise ModelError(
            f"trainable: group {name!r} has no parameters (modules {group['modules']}); "
            f"e.g. 'attention' is an Identity when model.head is 'linear'"
        )
    return {
        "name": str(name),
        "params": params,
        "lr": float(_group_field(group, "lr", name)),
        "weight_decay": float(_group_field(group, "weight_decay", name)),
    }


def _group_field(group: dict, key: str, name: str):
    if key not in group:
        raise ModelError(f"trainable: group {name!r} lacks the key {key!r}")
    return group[key]


def _submodule(model: nn.Module, path: str, group: str) -> nn.Module:
    """The module at dotted `path`, or ModelError listing what exists where the path broke."""
    parent = model
    walked: list[str] = []
    for part in path.split("."):
        children = dict(parent.named_children())
        if part not in children:
            where = ".".join(walked) or "the model"
            raise ModelError(
                f"trainable: group {group!r} lists module {path!r}, which does not exist; "
                f"children of {where}: {', '.join(children) or '(none)'}"
            )
        parent = children[part]
        walked.append(part)
    return parent
