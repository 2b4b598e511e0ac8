"""The networks: token attention as published, weight loading, freezing, baseline equivalence.

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
    TokenAttention,
    configure_trainable,
    create_model,
)

TAG = "convnext_tiny.fb_in1k"
LINEAR = {"tag": "convnext_tiny", "pretrained": False, "pretrained_file": None, "head": "linear"}
ATTENTION = LINEAR | {"head": "token_attention", "attention_dropout": 0.2, "output_dropout": 0.2}

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
