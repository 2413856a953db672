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
        inputs = self.session.get_inputs()
        self.input_name = inputs[0].name
        #: The graph takes each row's valid samples (``lengths``): a whole-clip export (speech-encoder models).
        self.takes_lengths = len(inputs) > 1 and inputs[1].name == "lengths"

    def metadata(self) -> dict[str, str]:
        """The model's ONNX ``metadata_props``."""
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def __call__(self, waveform: torch.Tensor | np.ndarray, lengths: torch.Tensor | np.ndarray | None = None) -> np.ndarray:
        """Probabilities ``(batch, n_classes)`` from ``(batch, num_samples)`` float32.

        Args:
            waveform: ``(batch, num_samples)`` float32.
            lengths: ``(batch,)`` valid samples per row, for a graph that :attr:`takes_lengths`;
                ``None``: every row is a whole clip of ``num_samples``. Ignored by other graphs.
        """
        x = waveform.detach().cpu().numpy() if isinstance(waveform, torch.Tensor) else waveform
        feed = {self.input_name: np.ascontiguousarray(x, dtype=np.float32)}
        if self.takes_lengths:
            if lengths is None:
                lengths = np.full(x.shape[0], x.shape[1], dtype=np.int64)
            n = lengths.detach().cpu().numpy() if isinstance(lengths, torch.Tensor) else lengths
            feed["lengths"] = np.ascontiguousarray(n, dtype=np.int64)
        return self.session.run(None, feed)[0]
