"""The pinned torch / torchvision pair imports and works together (the pre-seeded CPU torch 2.13 breaks
torchvision's C++ ops with "operator torchvision::nms does not exist")."""
import torch


def test_torchvision_imports_and_builds_resnet18():
    import torchvision
    from torchvision.models import resnet18

    model = resnet18(num_classes=10)
    assert sum(p.numel() for p in model.parameters()) == 11_181_642
    out = model(torch.zeros(2, 3, 32, 32))
    assert out.shape == (2, 10)
    # The C++ operator whose absence is the known failure mode.
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0], [2.0, 2.0, 3.0, 3.0]])
    keep = torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
    assert keep.tolist() == [0, 2]


def test_core_does_not_import_streamlit():
    import subprocess
    import sys

    code = "import sys, tavaal_core, tavaal_core.engine; print('streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
