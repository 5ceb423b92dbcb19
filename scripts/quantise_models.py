"""Int8 variants of the default plate models, for scripts/plate_bench.sh to measure.

  quantise_models.py MODELS_DIR OUT_DIR CALIBRATION_VIDEO

- clp_det.onnx -> OUT_DIR/clp_det.int8.onnx: static quantisation (QDQ, int8 weights per
  channel, uint8 activations), activation ranges calibrated on frames of CALIBRATION_VIDEO scaled
  as the agent feeds the detector (longer side 800). The calibration video is one the agent's own
  tools render (scripts/make_video.py), never the dev manifest the variants are scored on.
- clp_v2_c_rec.onnx -> OUT_DIR/clp_v2_c_rec.int8.onnx: dynamic quantisation (int8 weights;
  activations quantised per batch at run time), which needs no calibration. The quantiser
  leaves shapes it inferred in the model that ONNX Runtime then rejects (the opset-10 Reshape
  after the convolutions), so they are dropped; ONNX Runtime infers them again at load.
"""

import os
import sys

import cv2
import numpy as np
import onnx
from onnx import version_converter
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

DETECTOR_MAX_SIDE = 800
CALIBRATION_FRAMES = 24


def detector_input(frame):
    h, w = frame.shape[:2]
    scale = min(1.0, DETECTOR_MAX_SIDE / max(h, w))
    if scale < 1.0:
        frame = cv2.resize(frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    x = frame.astype("float32") - np.array((104, 117, 123), dtype="float32")
    return x.transpose(2, 0, 1)[None, ...]


class VideoFrames(CalibrationDataReader):
    """Evenly spaced frames of a video, as detector inputs."""

    def __init__(self, video):
        capture = cv2.VideoCapture(video)
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if total <= 0:
            raise SystemExit(f"cannot read frames from {video}")
        wanted = set(np.linspace(0, total - 1, CALIBRATION_FRAMES).astype(int).tolist())
        self.inputs = []
        for index in range(total):
            ok, frame = capture.read()
            if not ok:
                break
            if index in wanted:
                self.inputs.append({"image": detector_input(frame)})
        self.next = iter(self.inputs)

    def get_next(self):
        return next(self.next, None)


def main():
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    models, out, video = sys.argv[1:]
    os.makedirs(out, exist_ok=True)

    # The detector is opset 10; per-channel QDQ needs opset 13.
    opset13 = os.path.join(out, "clp_det.opset13.onnx")
    onnx.save(version_converter.convert_version(onnx.load(os.path.join(models, "clp_det.onnx")), 13), opset13)
    prepared = os.path.join(out, "clp_det.prepared.onnx")
    quant_pre_process(opset13, prepared, skip_symbolic_shape=True)
    quantize_static(
        prepared,
        os.path.join(out, "clp_det.int8.onnx"),
        VideoFrames(video),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QUInt8,
    )
    os.remove(prepared)
    os.remove(opset13)

    recogniser = os.path.join(out, "clp_v2_c_rec.int8.onnx")
    quantize_dynamic(
        os.path.join(models, "clp_v2_c_rec.onnx"),
        recogniser,
        weight_type=QuantType.QInt8,
    )
    quantised = onnx.load(recogniser)
    del quantised.graph.value_info[:]
    onnx.save(quantised, recogniser)
    print(f"wrote {out}/clp_det.int8.onnx and {out}/clp_v2_c_rec.int8.onnx")


if __name__ == "__main__":
    main()
