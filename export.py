"""Export a checkpoint to ONNX / TorchScript: ``python export.py ckpt_path=... [format=onnx|torchscript|both]``
(= ``ser-export``)."""

from ser_lightning.cli.main import export as main

if __name__ == "__main__":
    main()
