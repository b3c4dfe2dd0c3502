"""Task learners: outputs, feature taps, stems, and ImageNet weights when present locally."""
import torch
from torchvision.models import resnet18

from tavaal_core.models.task import IMAGENET_WEIGHTS_FILE, MLP, ResNet18, SmallCNN, build_task_model


def test_each_model_gives_logits_embedding_and_taps():
    mlp = MLP(2, 2)
    out = mlp(torch.randn(5, 2))
    assert out.logits.shape == (5, 2) and out.embedding.shape == (5, 64) and len(out.taps) == 1
    cnn = SmallCNN(1, 10)
    out = cnn(torch.randn(3, 1, 28, 28))
    assert out.logits.shape == (3, 10) and [t.shape[1] for t in out.taps] == cnn.tap_dims


def test_resnet18_stems():
    cifar = ResNet18(3, 10, stem="cifar").eval()
    out = cifar(torch.randn(2, 3, 32, 32))
    assert [t.shape[-1] for t in out.taps] == [32, 16, 8, 4]  # stride-1 stem, no max-pool
    imagenet = ResNet18(1, 10, stem="imagenet", pretrained=False).eval()
    out = imagenet(torch.randn(2, 1, 32, 32))
    assert [t.shape[-1] for t in out.taps] == [8, 4, 2, 1] and out.embedding.shape == (2, 512)


def test_imagenet_weights_are_used_when_present(tmp_path, monkeypatch):
    reference = resnet18(num_classes=1000)
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(reference.state_dict(), folder / IMAGENET_WEIGHTS_FILE)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    model = build_task_model("resnet18_imagenet", (3, 32, 32), 10, pretrained=True)
    assert model.pretrained_loaded
    assert torch.equal(model.layers[3][1].conv2.weight, reference.layer4[1].conv2.weight)
    grey = ResNet18(1, 10, stem="imagenet")
    assert torch.allclose(grey.stem[0].weight, reference.conv1.weight.sum(1, keepdim=True))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "absent"))
    assert not build_task_model("resnet18_imagenet", (3, 32, 32), 10, pretrained=True).pretrained_loaded


def test_small_cnn_reads_the_whole_map_not_a_pooled_vector():
    """The pooled net (one 64-vector per image) under-fit MNIST at 200 labels (41% vs logistic regression's
    80%); the classifier now reads every position of the last conv map."""
    cnn = SmallCNN(1, 10, input_size=(28, 28))
    assert cnn.fc.in_features == 64 * 7 * 7
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, :14] = 1.0
    flipped = torch.flip(x, dims=[2])  # same pixel histogram, other place: a pooled net could not tell them apart
    torch.manual_seed(0)
    cnn.eval()
    assert not torch.allclose(cnn(x).embedding, cnn(flipped).embedding)
