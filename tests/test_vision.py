"""paramspace.vision: image data, augmentation, the ResNets, training with train.fit, accuracy."""

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from paramspace import data as D
from paramspace import frames as Fm
from paramspace import vision as V
from paramspace.reports import resolve
from paramspace.train import seed_everything


def test_small_resnet_and_adapted_resnet34():
    net = V.small_resnet(1, 10, (4, 8, 8), mean=(0.1,), std=(0.3,))
    assert net(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    sizes = Fm.layer_input_sizes(net, torch.rand(1, 1, 28, 28))
    assert sizes["stem"] == 28 and sizes["block1.conv1"] == 14 and sizes["block3.conv2"] == 4
    r34 = V.build_model("resnet34", 3, 100, widths=[8], mean=[0.5] * 3, std=[0.25] * 3)
    inner = r34.net
    assert inner.conv1.kernel_size == (3, 3) and inner.conv1.stride == (1, 1) and isinstance(inner.maxpool, nn.Identity)
    layers = Fm.regularized_layers(r34)
    assert len(layers) == 37 and layers[-1].kind == "linear"  # 36 convolutions and the classifier
    r34.eval()
    with torch.no_grad():
        assert r34(torch.rand(2, 3, 32, 32)).shape == (2, 100)


def test_augment_crop_and_flip():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4)
    g = torch.Generator().manual_seed(0)
    f = V.augment(x, g, crop=False, flip=True)
    for i in range(2):
        assert torch.equal(f[i], x[i]) or torch.equal(f[i], x[i].flip(-1))
    c = V.augment(x, g, crop=True, flip=False, pad=1)
    assert c.shape == x.shape
    for i in range(2):  # every crop is a shifted window of the zero-padded image
        xp = F.pad(x[i], (1, 1, 1, 1))
        assert any(torch.equal(c[i], xp[:, a:a + 4, b:b + 4]) for a in range(3) for b in range(3))
    assert torch.equal(V.augment(x, g, False, False), x)


def test_data_and_second_domain():
    data = V.load_data("mnist", 64, 32, 0)
    assert data.X_train.shape == (64, 1, 28, 28) and 0 <= float(data.X_train.min()) and float(data.X_train.max()) <= 1
    assert data.table == "grey" and not data.crop
    assert V.second_domain("mnist", 10, 0) is None and V.second_domain("cifar10", 10, 0) is None
    name, X, y = V.second_domain("svhn", 10, 0)
    assert name == "MNIST" and X.shape == (10, 3, 32, 32) and len(y) == 10


def _toy_data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n + 32, 1, 28, 28, generator=g)
    y = (X[:, 0, :14].mean((1, 2)) > X[:, 0, 14:].mean((1, 2))).long()
    return V.ImageData("toy", X[:n], y[:n], X[n:], y[n:], 10, "grey")


@pytest.mark.parametrize("method", Fm.METHODS)
def test_train_classifier_with_every_regularizer(method):
    data = _toy_data()
    seed_everything(0)
    model = V.small_resnet(1, 10, (4, 4, 8), *data.stats())
    before = [p.detach().clone() for p in model.parameters()]
    reg = Fm.Regularizer(method, model, 0.1, A=0.5, B=2.0)
    out = V.train_classifier(model, data, epochs=1, batch_size=32, lr=0.01, regularizer=reg, seed=0)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert (out["mean_reg"] == 0) == (method == "none") and out["mean_ce"] > 0 and not model.training


def test_train_classifier_means_and_determinism():
    data = _toy_data(n=40)  # batches of 16: 16, 16, 8 -> 3 steps per epoch
    ces = []

    def run(reg_value=None):
        seed_everything(0)
        model = V.small_resnet(1, 10, (2, 2, 2), *data.stats())
        reg = None if reg_value is None else (lambda m: m.fc.weight.sum() * 0.0 + reg_value)
        out = V.train_classifier(model, data, epochs=2, batch_size=16, lr=0.01, regularizer=reg, seed=3)
        return out, [p.detach().clone() for p in model.parameters()]

    a, wa = run()
    b, wb = run(0.25)
    assert a["mean_reg"] == 0.0 and b["mean_reg"] == pytest.approx(0.25)  # mean over the 6 steps
    # a constant penalty has no gradient: the same weights and cross-entropies as without one
    assert all(torch.equal(x, y) for x, y in zip(wa, wb)) and a["mean_ce"] == b["mean_ce"]
    c, wc = run()  # same seed, same weights
    assert all(torch.equal(x, y) for x, y in zip(wa, wc))
    with pytest.raises(ValueError):
        V.train_classifier(V.small_resnet(), data, epochs=1, batch_size=16, lr=0.01, optimizer="rmsprop")


def _habit_run(data, **habits):
    seed_everything(0)
    model = V.small_resnet(1, 10, (4, 4, 8), *data.stats()).to(data.X_train.device)
    reg = Fm.Regularizer("frame", model, 0.1, A=0.5, B=2.0)
    out = V.train_classifier(model, data, epochs=2, batch_size=16, lr=0.01, regularizer=reg, seed=1, **habits)
    return out, model


def test_train_classifier_bf16_keeps_the_method():
    # bf16 autocast: the forward pass in bfloat16 (about 3 significant digits), the weights, the loss and
    # the frame penalty in float32; the cross-entropy agrees to bfloat16's precision, not to float32's
    data = _toy_data(n=48)
    base, _ = _habit_run(data)
    bf, m = _habit_run(data, amp="bf16")
    assert all(p.dtype == torch.float32 for p in m.parameters())
    assert bf["mean_ce"] == pytest.approx(base["mean_ce"], rel=5e-2) and bf["mean_ce"] != base["mean_ce"]
    assert bf["mean_reg"] == pytest.approx(base["mean_reg"], rel=5e-2)
    with pytest.raises(ValueError, match="amp must be one of"):
        V.train_classifier(V.small_resnet(), data, epochs=1, batch_size=16, lr=0.01, amp="fp8")
    with pytest.raises(ValueError, match="channels_last is a GPU habit"):
        V.train_classifier(V.small_resnet(), data, epochs=1, batch_size=16, lr=0.01, channels_last=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="channels_last is a CUDA habit (refused on the CPU)")
def test_train_classifier_channels_last_keeps_the_weights():
    # the same arithmetic in another memory layout: the same weights to float tolerance
    # (cuDNN's algorithms may differ between the layouts, so the tolerance is float32's, not bitwise)
    torch.backends.cudnn.deterministic = True
    data = _toy_data(n=48).to(torch.device("cuda"))
    base, m0 = _habit_run(data)
    cl, m1 = _habit_run(data, channels_last=True)
    assert m1.stem.weight.is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(m0.parameters(), m1.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)
    assert cl["mean_ce"] == pytest.approx(base["mean_ce"], rel=1e-4)


def test_checkpoints():
    assert V.checkpoint_steps(10, 4) == [2, 5, 8, 10] and V.checkpoint_steps(3, 5) == [1, 2, 3]
    assert V.checkpoint_steps(10, 0) == []
    data = _toy_data()  # 64 training images: 4 steps per epoch, 8 in all
    seed_everything(0)
    model = V.small_resnet(1, 10, (2, 2, 2), *data.stats())
    seen = []

    def keep(step, total):  # evaluating switches to eval mode; fit must switch back
        seen.append((step, total, model.training))
        model.eval()

    V.train_classifier(model, data, epochs=2, batch_size=16, lr=0.01, regularizer=Fm.Regularizer("frame", model, 0.01),
                       seed=0, checkpoints=3, on_checkpoint=keep)
    assert seen == [(3, 8, True), (5, 8, True), (8, 8, True)]


def test_paper_path_resnet34_sgd_clipping_and_augmentation():
    # the paper profile's code path (torchvision ResNet-34 for 32x32 RGB, SGD, gradient clipping,
    # crop + flip) on eight random images instead of CIFAR
    g = torch.Generator().manual_seed(0)
    X, y = torch.rand(8, 3, 32, 32, generator=g), torch.randint(0, 10, (8,), generator=g)
    data = V.ImageData("cifar10", X, y, X, y, 10, "cifar", crop=True, flip=True)
    P = {**resolve("frame_regularization", "paper"), "epochs": 1, "batch_size": 8, "device": "cpu"}
    seed_everything(0)
    net = V.model_for("resnet34", data, widths=P["widths"])
    before = net.net.fc.weight.detach().clone()
    reg = Fm.Regularizer("srip", net, P["srip_weight"], srip_iters=P["srip_iters"])
    out = V.train_classifier(net, data, epochs=P["epochs"], batch_size=P["batch_size"], lr=P["lr"],
                             optimizer=P["optimizer"], weight_decay=P["weight_decay"], grad_clip=P["grad_clip"],
                             regularizer=reg, seed=0)
    assert out["mean_reg"] > 0 and not torch.equal(before, net.net.fc.weight)
    assert 0 <= V.accuracy(net, X, y) <= 1


def test_resnet_adapter_takes_channels_and_classes_from_the_data():
    X, y = torch.rand(4, 1, 28, 28), torch.arange(4) % 3
    data = V.ImageData("toy", X, y, X, y, 3, "grey")
    for arch in V.RESNETS:
        net = V.model_for(arch, data)
        assert net.net.conv1.in_channels == 1 and net.net.fc.out_features == 3
        assert isinstance(net.net.maxpool, nn.Identity)
        net.eval()
        with torch.no_grad():
            assert net(X[:2]).shape == (2, 3)
    torch.testing.assert_close(V.model_for("small_resnet", data, widths=(2, 2, 2)).norm.mean.flatten(),
                               X.mean((0, 2, 3)))
    with pytest.raises(ValueError):
        V.resnet_cifar("resnet101", 10)
    with pytest.raises(ValueError):
        V.build_model("vgg", 1, 10)


def test_accuracy_by_hand():
    class Sign(nn.Module):
        def forward(self, x):
            s = x.reshape(len(x), -1).sum(1)
            return torch.stack([-s, s], 1)

    X = torch.tensor([1.0, -1.0, 2.0, -3.0, 0.5]).reshape(5, 1, 1, 1)
    y = torch.tensor([1, 0, 0, 0, 1])
    assert V.accuracy(Sign(), X, y, batch_size=2) == pytest.approx(4 / 5)
    assert V.accuracy(Sign(), X[:0], y[:0]) == 0.0


def test_evaluate_by_hand():
    class Fixed(nn.Module):
        def forward(self, x):
            return torch.cat([torch.zeros(len(x), 1), x.reshape(len(x), 1)], 1)

    X = torch.tensor([0.0, 2.0, -1.0]).reshape(3, 1, 1, 1)
    y = torch.tensor([1, 1, 0])
    ce = [math.log(2), math.log(1 + math.exp(-2)), math.log(1 + math.exp(-1))]
    loss, acc = V.evaluate(Fixed(), X, y, batch_size=2)
    assert loss == pytest.approx(sum(ce) / 3) and acc == pytest.approx(2 / 3)  # the tie at 0 goes to class 0
    assert V.accuracy(Fixed(), X, y) == acc


# --- report 3's networks and standardised images (moved from test_dropconnect.py) ------------------


def test_resnet18_adapted_to_cifar_without_normalisation():
    from paramspace import dropconnect as DC

    net = V.resnet_cifar("resnet18", 10, 3, mean=None)
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1)
    assert isinstance(net.maxpool, nn.Identity)
    net.eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    names = DC.masked_names(net)
    assert len(names) == 21 and names[0] == "conv1.weight" and names[-1] == "fc.weight"  # 20 convs + fc


def test_small_cnn_shapes_and_build_model():
    from paramspace import dropconnect as DC

    net = V.small_cnn(1, 10, 4, 28)
    assert net(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    assert DC.masked_names(net) == ["0.weight", "3.weight", "7.weight", "9.weight"]
    # by name, for 32x32 RGB: the first linear layer follows the image size
    rgb = V.build_model("cnn", 3, 100, width=4, image_size=32, mean=None)
    assert rgb[0].in_channels == 3 and rgb[7].in_features == 8 * 8 * 8 and rgb(torch.randn(2, 3, 32, 32)).shape == (2, 100)
    # with a normalisation layer in front (pixel inputs)
    normed = V.build_model("cnn", 1, 10, width=4, image_size=28, mean=(0.5,), std=(0.25,))
    assert isinstance(normed[0], V.Normalize)
    x = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(normed[1:]((x - 0.5) / 0.25), normed(x))


def test_load_data_standardize_is_per_channel_and_equals_the_scalar_for_grey_images():
    raw = V.load_data("fashion-mnist", 64, 32, 3)
    data = V.load_data("fashion-mnist", 64, 32, 3, standardize=True)
    assert data.sizes == (64, 32) and data.in_channels == 1 and data.image_size == 28
    mu, sd = raw.X_train.mean(), raw.X_train.std()
    # report 3's numbers rest on this: bit for bit the old scalar standardisation
    assert torch.equal(data.X_train, (raw.X_train - mu) / sd) and torch.equal(data.X_test, (raw.X_test - mu) / sd)
    again = V.load_data("fashion-mnist", 64, 32, 3, standardize=True)
    assert torch.equal(again.y_train, data.y_train)
    g = torch.Generator().manual_seed(0)
    X = torch.rand(10, 3, 4, 4, generator=g) * torch.tensor([1.0, 2.0, 3.0]).reshape(1, 3, 1, 1)
    rgb = V.standardized(V.ImageData("toy", X, torch.zeros(10, dtype=torch.long), X.clone(),
                                     torch.zeros(10, dtype=torch.long)))
    torch.testing.assert_close(rgb.X_train.mean((0, 2, 3)), torch.zeros(3), atol=1e-6, rtol=0)
    torch.testing.assert_close(rgb.X_train.std((0, 2, 3)), torch.ones(3), atol=1e-5, rtol=0)
    with pytest.raises(D.DataError, match="imagenet"):
        V.load_data("imagenet", 10, 10, 0)


def test_report4_paper_networks_train_on_the_shipped_grey_images():
    # no lock between report 4's paper networks and the shipped 28x28 grey data: resolve accepts them, and
    # ResNet-50 (channels, classes and normalisation from the data) takes a training step on MNIST
    P = resolve("frame_regularization", "smoke", dict(datasets=["mnist", "fashion-mnist"], archs=["resnet34", "resnet50"]))
    assert P["archs"] == ["resnet34", "resnet50"]
    data = V.load_data("mnist", 8, 4, 0)
    seed_everything(0)
    net = V.model_for("resnet50", data)
    assert net.net.conv1.in_channels == 1
    before = net.net.fc.weight.detach().clone()
    V.train_classifier(net, data, epochs=1, batch_size=8, lr=0.1, optimizer="sgd", seed=0)
    assert not torch.equal(before, net.net.fc.weight) and 0 <= V.accuracy(net, data.X_test, data.y_test) <= 1
