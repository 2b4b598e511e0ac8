"""The networks: token attention as published, the spatial-attention ablation, weight loading,
freezing, baseline equivalence.

Everything runs offline on 32x32 inputs with random initialisation, except the local-file test,
which loads a file written here through timm's pretrained machinery.
"""

import pytest
import timm
import timm.models._builder as timm_builder
import torch
import torch.nn.functional as F  # noqa: N812
from safetensors.torch import save_file
from torch import nn

from convnext_tinyimagenet.train.models import (
    Classifier,
    ModelError,
    SpatialAttention,
    TokenAttention,
    configure_trainable,
    create_model,
)

TAG = "convnext_tiny.fb_in1k"
LINEAR = {"tag": "convnext_tiny", "pretrained": False, "pretrained_file": None, "head": "linear"}
ATTENTION = LINEAR | {"head": "token_attention", "attention_dropout": 0.2, "output_dropout": 0.2}
SPATIAL = ATTENTION | {"head": "spatial_attention", "attention_heads": 8}
# LayerNorm (weight, bias) + MHA in-projection (3·768² + 3·768) + out-projection (768² + 768)
SPATIAL_NEW_PARAMS = 2 * 768 + 4 * 768 * 768 + 4 * 768  # 2,363,904

BASELINE_GROUPS = [{"name": "head", "modules": ["head"], "lr": 1e-3, "weight_decay": 0.01}]
IMPROVED_GROUPS = [
    {"name": "stages.3", "modules": ["backbone.stages.3"], "lr": 5e-5, "weight_decay": 1e-4},
    {"name": "attention", "modules": ["attention"], "lr": 1e-4, "weight_decay": 5e-4},
    {"name": "head", "modules": ["head"], "lr": 3e-4, "weight_decay": 1e-4},
]


def n_params(module: nn.Module) -> int:
    return sum(1 for _ in module.parameters())


@pytest.fixture
def no_download(monkeypatch):
    """Make any hub or URL download fail at once, so no test can reach the network."""

    def offline(*args, **kwargs):
        raise OSError("offline (test)")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(timm_builder, "load_state_dict_from_hf", offline)
    monkeypatch.setattr(timm_builder, "load_state_dict_from_url", offline)


@pytest.fixture(scope="module")
def linear_model() -> Classifier:
    return create_model(LINEAR, num_classes=10)


@pytest.fixture(scope="module")
def attention_model() -> Classifier:
    return create_model(ATTENTION, num_classes=10)


# --- TokenAttention: the published module reduces to dropout(dropout(1) * v(x)) -------------


def test_token_attention_eval_equals_value_projection():
    torch.manual_seed(0)
    attention = TokenAttention(16, attention_dropout=0.2, output_dropout=0.2).eval()
    x = torch.randn(8, 16)
    out = attention(x)
    assert out.shape == (8, 16)
    torch.testing.assert_close(out, attention.v(x))


def test_token_attention_train_equals_dropout_of_value_projection():
    attention = TokenAttention(16, attention_dropout=0.2, output_dropout=0.2).train()
    x = torch.randn(64, 16)
    torch.manual_seed(123)
    out = attention(x)
    # The same random draws by hand: a (B, 1, 1) mask on the softmax weights (all exactly 1),
    # then an element-wise mask on the (B, 1, D) output.
    torch.manual_seed(123)
    weights = F.dropout(torch.ones(64, 1, 1), p=0.2, training=True)
    manual = F.dropout(weights * attention.v(x).unsqueeze(1), p=0.2, training=True).squeeze(1)
    torch.testing.assert_close(out, manual)


def test_token_attention_first_dropout_drops_or_scales_whole_samples():
    torch.manual_seed(1)
    attention = TokenAttention(16, attention_dropout=0.5, output_dropout=0.0).train()
    x = torch.randn(64, 16)
    out, value = attention(x), attention.v(x)
    dropped = (out == 0).all(dim=1)
    assert 0 < dropped.sum() < 64  # both kinds occur (p=0.5, 64 samples)
    torch.testing.assert_close(out[~dropped], value[~dropped] / 0.5)


def test_token_attention_query_and_key_get_no_gradient():
    torch.manual_seed(0)
    attention = TokenAttention(16).train()
    attention(torch.randn(4, 16)).pow(2).sum().backward()
    for layer in (attention.q, attention.k):
        for param in layer.parameters():
            assert param.grad is None or torch.count_nonzero(param.grad) == 0
    assert torch.count_nonzero(attention.v.weight.grad) > 0


# --- create_model ---------------------------------------------------------------------------


def test_linear_and_attention_models(linear_model, attention_model):
    assert isinstance(linear_model.attention, nn.Identity)
    assert isinstance(attention_model.attention, TokenAttention)
    assert attention_model.attention.attn_drop.p == 0.2
    assert attention_model.attention.out_drop.p == 0.2
    for model in (linear_model, attention_model):
        assert model.num_features == 768
        assert (model.head.in_features, model.head.out_features) == (768, 10)
        model.eval()
        x = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            feats = model.features(x)
            assert feats.shape == (2, 768)
            torch.testing.assert_close(model(x), model.forward_head(feats))
            assert model(x).shape == (2, 10)


def test_dropout_defaults_to_published_value():
    cfg = {k: v for k, v in ATTENTION.items() if not k.endswith("_dropout")}
    model = create_model(cfg, num_classes=3)
    assert model.attention.attn_drop.p == model.attention.out_drop.p == 0.2


def test_linear_head_matches_replaced_timm_head_fc():
    """Baseline: backbone(num_classes=0) + Linear == the full timm model with head.fc replaced."""
    torch.manual_seed(0)
    full = timm.create_model("convnext_tiny", pretrained=False, num_classes=10).eval()
    model = create_model(LINEAR, num_classes=10).eval()
    backbone_state = {k: v for k, v in full.state_dict().items() if not k.startswith("head.fc.")}
    model.backbone.load_state_dict(backbone_state, strict=True)
    model.head.load_state_dict(full.head.fc.state_dict())
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), full(x), rtol=0, atol=1e-6)


def test_local_file_weights_are_loaded(tmp_path, no_download):
    torch.manual_seed(0)
    source = timm.create_model("convnext_tiny", pretrained=False, num_classes=1000)
    with torch.no_grad():  # move every tensor away from any initialisation (norms start at 1/0)
        for tensor in source.state_dict().values():
            tensor.add_(torch.randn_like(tensor))
    saved = {k: v.contiguous() for k, v in source.state_dict().items()}
    path = tmp_path / "model.safetensors"
    save_file(saved, str(path))

    cfg = ATTENTION | {"tag": TAG, "pretrained": True, "pretrained_file": str(path)}
    loaded = create_model(cfg, num_classes=10).backbone.state_dict()
    expected = {k: v for k, v in saved.items() if not k.startswith("head.fc.")}
    assert loaded.keys() == expected.keys()
    for key, tensor in expected.items():
        assert torch.equal(loaded[key], tensor), key

    fresh = create_model(cfg | {"pretrained": False}, num_classes=10).backbone.state_dict()
    assert not any(torch.equal(fresh[k], t) for k, t in expected.items() if t.numel() > 1)


def test_local_file_with_missing_keys_is_rejected(tmp_path, no_download):
    # timm loads non-strictly once it drops the classifier: a partial file must not leave
    # random weights behind silently.
    source = timm.create_model("convnext_tiny", pretrained=False, num_classes=1000)
    state = source.state_dict()
    partial = {k: v.contiguous() for k, v in state.items() if not k.startswith("stages.3.")}
    path = tmp_path / "partial.safetensors"
    save_file(partial, str(path))
    cfg = LINEAR | {"tag": TAG, "pretrained": True, "pretrained_file": str(path)}
    with pytest.raises(ModelError, match="does not match") as info:
        create_model(cfg, num_classes=10)
    assert str(path) in str(info.value) and "stages.3." in str(info.value)


def test_local_file_of_another_layout_is_rejected(tmp_path, no_download):
    # e.g. our own Classifier's state dict: every key carries a "backbone." prefix
    source = timm.create_model("convnext_tiny", pretrained=False, num_classes=0)
    path = tmp_path / "classifier.safetensors"
    save_file({f"backbone.{k}": v.contiguous() for k, v in source.state_dict().items()}, path)
    cfg = LINEAR | {"tag": TAG, "pretrained": True, "pretrained_file": str(path)}
    with pytest.raises(ModelError) as info:
        create_model(cfg, num_classes=10)
    assert str(path) in str(info.value)


def test_missing_pretrained_file(tmp_path, no_download):
    path = tmp_path / "absent" / "model.safetensors"
    cfg = LINEAR | {"tag": TAG, "pretrained": True, "pretrained_file": str(path)}
    with pytest.raises(ModelError, match="no such file") as info:
        create_model(cfg, num_classes=10)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("tag", ["convnext_tiniest.fb_in1k", "convnext_tiny.no_such_tag"])
def test_unknown_tag(tag):
    with pytest.raises(ModelError) as info:
        create_model(LINEAR | {"tag": tag}, num_classes=10)
    assert tag in str(info.value)


def test_failed_download_names_tag_and_pretrained_file(no_download):
    with pytest.raises(ModelError) as info:
        create_model(LINEAR | {"tag": TAG, "pretrained": True}, num_classes=10)
    message = str(info.value)
    assert TAG in message and "pretrained_file" in message
    assert isinstance(info.value.__cause__, OSError)


def test_unknown_head():
    with pytest.raises(ModelError, match=r"model\.head"):
        create_model(LINEAR | {"head": "mlp"}, num_classes=10)


def test_pretrained_data_config():
    model = create_model(LINEAR | {"tag": TAG}, num_classes=10)  # pretrained=False: cfg only
    cfg = timm.data.resolve_model_data_config(model.backbone)  # what the weights expect
    assert cfg["mean"] == pytest.approx((0.485, 0.456, 0.406))
    assert cfg["std"] == pytest.approx((0.229, 0.224, 0.225))
    assert cfg["input_size"] == (3, 224, 224)
    assert cfg["interpolation"] == "bicubic"


# --- configure_trainable ----------------------------------------------------------------------


def trainable_ids(model: nn.Module) -> set[int]:
    return {id(p) for p in model.parameters() if p.requires_grad}


def test_baseline_trains_only_the_head(linear_model):
    groups = configure_trainable(linear_model, BASELINE_GROUPS)
    assert [(g["name"], g["lr"], g["weight_decay"]) for g in groups] == [("head", 1e-3, 0.01)]
    assert len(groups[0]["params"]) == 2  # weight and bias
    assert trainable_ids(linear_model) == {id(p) for p in linear_model.head.parameters()}
    torch.optim.AdamW(groups)  # accepted as given


def test_improved_trains_last_stage_attention_and_head(attention_model):
    groups = configure_trainable(attention_model, IMPROVED_GROUPS)
    assert [(g["name"], g["lr"], g["weight_decay"]) for g in groups] == [
        ("stages.3", 5e-5, 1e-4),
        ("attention", 1e-4, 5e-4),
        ("head", 3e-4, 1e-4),
    ]
    backbone = attention_model.backbone
    stage3 = backbone.stages[3]
    assert [len(g["params"]) for g in groups] == [n_params(stage3), 6, 2]
    trained = (stage3, attention_model.attention, attention_model.head)
    expected = {id(p) for module in trained for p in module.parameters()}
    assert trainable_ids(attention_model) == expected
    frozen_modules = (backbone.stem, *backbone.stages[:3], backbone.head.norm)
    for frozen in frozen_modules:
        assert n_params(frozen) > 0
        assert not any(p.requires_grad for p in frozen.parameters())
    torch.optim.AdamW(groups)


def test_configure_trainable_refreezes_previous_choice(attention_model):
    configure_trainable(attention_model, IMPROVED_GROUPS)
    configure_trainable(attention_model, BASELINE_GROUPS)
    assert trainable_ids(attention_model) == {id(p) for p in attention_model.head.parameters()}


@pytest.mark.parametrize("path", ["backbone.stages.7", "neck", "backbone.stage"])
def test_bad_module_path(linear_model, path):
    groups = [{"name": "mine", "modules": [path], "lr": 1e-3, "weight_decay": 0.0}]
    with pytest.raises(ModelError) as info:
        configure_trainable(linear_model, groups)
    message = str(info.value)
    assert path in message and "'mine'" in message and "children of" in message


def test_overlapping_groups(attention_model):
    groups = [
        {"name": "last", "modules": ["backbone.stages.3"], "lr": 1e-4, "weight_decay": 0.0},
        {"name": "all", "modules": ["backbone"], "lr": 1e-5, "weight_decay": 0.0},
    ]
    with pytest.raises(ModelError, match="'last'"):
        configure_trainable(attention_model, groups)


def test_group_without_parameters(linear_model):
    groups = [{"name": "attention", "modules": ["attention"], "lr": 1e-4, "weight_decay": 0.0}]
    with pytest.raises(ModelError, match="'attention' has no parameters"):
        configure_trainable(linear_model, groups)


# --- frozen leading stages run without autograd; the function is the backbone's own ---------


@pytest.mark.parametrize(("groups", "frozen"), [(IMPROVED_GROUPS, 3), (BASELINE_GROUPS, 4)])
def test_frozen_prefix_runs_without_grad_and_computes_the_same(groups, frozen):
    model = create_model(ATTENTION if groups is IMPROVED_GROUPS else LINEAR, num_classes=10)
    configure_trainable(model, groups)
    assert model.frozen_stages() == frozen
    model.train()
    x = torch.randn(4, 3, 32, 32, requires_grad=True)  # an input that needs grad, even so
    seen = []
    hook = model.backbone.stages[frozen - 1].register_forward_hook(
        lambda module, args, out: seen.append(out.requires_grad)
    )
    features = model.features(x)
    hook.remove()
    assert seen == [False]  # nothing of the frozen stages is kept for backward
    torch.testing.assert_close(features, model.backbone(x), rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(model.features(x), features.detach(), rtol=0, atol=0)


def test_frozen_prefix_leaves_the_trained_stage_gradients_alone():
    model = create_model(ATTENTION, num_classes=10)
    configure_trainable(model, IMPROVED_GROUPS)
    model.eval()  # no dropout: both passes compute the same function
    x = torch.randn(4, 3, 32, 32)
    grads = []
    for forward in (model.features, model.backbone):
        model.zero_grad()
        forward(x).square().sum().backward()
        grads.append([p.grad.clone() for p in model.backbone.stages[3].parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)
    assert model.frozen_stages() == 3


def test_unfrozen_stem_means_no_frozen_prefix(attention_model):
    configure_trainable(attention_model, [{"name": "all", "modules": ["backbone"], "lr": 1e-4,
                                           "weight_decay": 0.0}])  # fmt: skip
    assert attention_model.frozen_stages() == 0


# --- spatial_attention: MHA over the stage-3 token map, pre-norm, residual, pooled after ----


@pytest.fixture(scope="module")
def spatial_model() -> Classifier:
    return create_model(SPATIAL, num_classes=10)


def numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_spatial_attention_adds_at_most_2_5_million_parameters(spatial_model, linear_model):
    attention = spatial_model.attention
    assert isinstance(attention, SpatialAttention)
    assert numel(attention) == SPATIAL_NEW_PARAMS <= 2_500_000
    assert numel(spatial_model) - numel(linear_model) == SPATIAL_NEW_PARAMS
    assert [name for name, _ in attention.named_parameters()] == [
        "norm.weight",
        "norm.bias",
        "attn.in_proj_weight",
        "attn.in_proj_bias",
        "attn.out_proj.weight",
        "attn.out_proj.bias",
    ]
    assert (attention.attn.num_heads, attention.attn.head_dim) == (8, 96)
    assert attention.attn.dropout == attention.out_drop.p == 0.2


@pytest.mark.parametrize(("size", "side"), [(224, 7), (32, 1)])
def test_spatial_attention_attends_over_the_stage_3_tokens(spatial_model, size, side):
    model = spatial_model.eval()
    seen = []
    hook = model.attention.attn.register_forward_hook(
        lambda module, args, out: seen.append([tuple(a.shape) for a in args])
    )
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        feats = model.features(x)  # what a feature cache would hold: the map, not pooled
        logits = model(x)
        torch.testing.assert_close(model.forward_head(feats), logits, rtol=0, atol=0)
    hook.remove()
    assert feats.shape == (2, 768, side, side)
    assert logits.shape == (2, 10)
    assert seen == [[(2, side * side, 768)] * 3] * 2  # query, key, value: 49 tokens at 224 px


def test_spatial_attention_matches_a_hand_written_computation(spatial_model):
    model, x = spatial_model.eval(), torch.randn(2, 3, 224, 224)
    attention, heads = model.attention, 8
    with torch.no_grad():
        tokens = model.backbone.forward_features(x).flatten(2).transpose(1, 2)  # (2, 49, 768)
        normed = F.layer_norm(tokens, (768,), attention.norm.weight, attention.norm.bias)
        qkv = F.linear(normed, attention.attn.in_proj_weight, attention.attn.in_proj_bias)
        q, k, v = (t.unflatten(-1, (heads, 96)).transpose(1, 2) for t in qkv.chunk(3, dim=-1))
        weights = (q @ k.transpose(-2, -1) / 96**0.5).softmax(dim=-1)  # (2, 8, 49, 49)
        mixed = (weights @ v).transpose(1, 2).flatten(2)
        attended = tokens + attention.attn.out_proj(mixed)
        pooled = attended.mean(dim=1)  # global average pool, then the backbone's head.norm
        norm = model.backbone.head.norm
        pooled = F.layer_norm(pooled, (768,), norm.weight, norm.bias, norm.eps)
        torch.testing.assert_close(model(x), model.head(pooled), rtol=1e-4, atol=1e-5)


def test_zeroed_spatial_attention_gives_the_pooled_backbone_output():
    torch.manual_seed(0)
    model = create_model(SPATIAL, num_classes=10).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        plain = model.head(model.backbone(x))  # pool -> head.norm -> Linear, no attention
        assert not torch.allclose(model(x), plain, atol=1e-3)  # the attention acts...
        model.attention.attn.out_proj.weight.zero_()
        model.attention.attn.out_proj.bias.zero_()
        torch.testing.assert_close(model(x), plain)  # ...and the residual carries the rest


def test_spatial_output_dropout_acts_on_the_linear_head_input():
    model = create_model(SPATIAL | {"attention_dropout": 0.0, "output_dropout": 0.5}, 10)
    inputs = []
    hook = model.head.register_forward_pre_hook(lambda module, args: inputs.append(args[0]))
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        model.eval()(x)
        torch.manual_seed(0)
        model.train()(x)  # the backbone has no dropout or drop path: only out_drop differs
    hook.remove()
    pooled, dropped = inputs
    kept = dropped != 0
    assert 0.3 < kept.float().mean() < 0.7  # element-wise, p = 0.5 over 4 x 768 features
    torch.testing.assert_close(dropped[kept], pooled[kept] / 0.5)


@pytest.mark.parametrize(("size", "query_and_key_learn"), [(224, True), (32, False)])
def test_improved_recipe_trains_stage_3_and_the_spatial_attention(size, query_and_key_learn):
    model = create_model(SPATIAL, num_classes=10)
    groups = configure_trainable(model, IMPROVED_GROUPS)
    assert [len(g["params"]) for g in groups] == [n_params(model.backbone.stages[3]), 6, 2]
    assert model.frozen_stages() == 3
    model.train()
    F.cross_entropy(model(torch.randn(2, 3, size, size)), torch.tensor([1, 2])).backward()
    trained = (model.backbone.stages[3], model.attention, model.head)
    for name, param in (item for module in trained for item in module.named_parameters()):
        if name != "attn.in_proj_weight":  # checked by block below
            assert torch.count_nonzero(param.grad) > 0, name
    q, k, v = model.attention.attn.in_proj_weight.grad.chunk(3)
    assert torch.count_nonzero(v) > 0
    # 49 tokens: query and key shape the softmax; one token (32 px): the softmax is exactly 1,
    # as in the published token attention, and they get no gradient
    assert (torch.count_nonzero(q) > 0) == (torch.count_nonzero(k) > 0) == query_and_key_learn
    frozen = (model.backbone.stem, *model.backbone.stages[:3], model.backbone.head.norm)
    assert all(p.grad is None for module in frozen for p in module.parameters())


def test_spatial_frozen_prefix_runs_without_grad_and_computes_the_same():
    model = create_model(SPATIAL, num_classes=10)
    configure_trainable(model, IMPROVED_GROUPS)
    model.train()
    x = torch.randn(2, 3, 32, 32)
    seen = []
    hook = model.backbone.stages[2].register_forward_hook(
        lambda module, args, out: seen.append(out.requires_grad)
    )
    features = model.features(x)
    hook.remove()
    assert seen == [False]
    torch.testing.assert_close(features, model.backbone.forward_features(x), rtol=0, atol=0)


def test_spatial_head_refuses_pooled_features(spatial_model):
    # e.g. features cached for a linear head with the same frozen backbone
    with pytest.raises(ModelError, match=r"\(B, D, H, W\) feature map.*\(2, 768\)"):
        spatial_model.forward_head(torch.randn(2, 768))


@pytest.mark.parametrize("heads", [None, 0, 7, 8.0, True])
def test_attention_heads_must_divide_the_feature_width(heads):
    cfg = {k: v for k, v in SPATIAL.items() if k != "attention_heads"}
    if heads is not None:
        cfg["attention_heads"] = heads
    with pytest.raises(ModelError, match=r"model\.attention_heads.*768"):
        create_model(cfg, num_classes=10)


def test_spatial_attention_needs_a_convnext_like_backbone():
    with pytest.raises(ModelError, match=r"ConvNeXt-like.*ResNet"):
        create_model(SPATIAL | {"tag": "resnet18"}, num_classes=10)


# --- the published heads are unchanged by the spatial one ------------------------------------


@pytest.mark.parametrize("cfg", [LINEAR, ATTENTION], ids=["linear", "token_attention"])
def test_published_heads_draw_and_compute_as_built_by_hand(cfg):
    """Same parameters from the same seed, and the same training-mode outputs (dropout draws),
    as the published construction: backbone, then attention, then Linear."""
    torch.manual_seed(0)
    model = create_model(cfg, num_classes=10)
    torch.manual_seed(0)
    backbone = timm.create_model("convnext_tiny", pretrained=False, num_classes=0)
    token = cfg["head"] == "token_attention"
    attention = TokenAttention(768, 0.2, 0.2) if token else nn.Identity()
    reference = nn.ModuleDict({"backbone": backbone, "attention": attention,
                               "head": nn.Linear(768, 10)})  # fmt: skip
    expected = reference.state_dict()
    assert list(model.state_dict()) == list(expected)
    for key, tensor in model.state_dict().items():
        assert torch.equal(tensor, expected[key]), key
    x = torch.randn(4, 3, 32, 32)
    outputs = []
    for forward in (model.train(), lambda x: reference.head(attention(backbone(x)))):
        torch.manual_seed(1)
        outputs.append(forward(x))
    torch.testing.assert_close(*outputs, rtol=0, atol=0)


def test_spatial_head_leaves_the_backbone_draws_alone():
    torch.manual_seed(0)
    linear = create_model(LINEAR, num_classes=10).backbone.state_dict()
    torch.manual_seed(0)
    spatial = create_model(SPATIAL, num_classes=10).backbone.state_dict()
    assert all(torch.equal(spatial[k], t) for k, t in linear.items())
