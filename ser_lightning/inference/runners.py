"""Running an exported ONNX model with ONNX Runtime, with the exported module's interface."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


class OnnxRunner:
    """ONNX Runtime session with the exported module's interface (for parity checks and predict).

    Args:
        path: ``.onnx`` file.
        threads: ``intra_op_num_threads`` (0 = ONNX Runtime's default).
        providers: Execution providers (default CPU).

    Raises:
        ImportError: ``onnxruntime`` missing (with the install command).
    """

    def __init__(self, path: str | Path, threads: int = 0, providers: list[str] | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError('running ONNX models needs onnxruntime: pip install -e ".[export]"') from err
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), sess_options=opts,
                                            providers=providers or ["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def metadata(self) -> dict[str, str]:
        """The model's ONNX ``metadata_props``."""
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def __call__(self, waveform: torch.Tensor | np.ndarray) -> np.ndarray:
        """Probabilities ``(batch, n_classes)`` from ``(batch, num_samples)`` float32."""
        x = waveform.detach().cpu().numpy() if isinstance(waveform, torch.Tensor) else waveform
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]
