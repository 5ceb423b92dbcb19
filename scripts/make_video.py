#!/usr/bin/env python3
"""Make a forecourt video from a scenario file (the same file the pump simulator reads).

Each [[car]] of the scenario drives into its fuelling point's lane, stands still from arrive_s+2 to
depart_s-2 and drives off. Its plate is rendered with a CJK font the way Chinese plates are laid out
(440x140 mm; 45x90 mm characters; blue with white text, or the green 8-character new-energy plate),
so the real ONNX models have something real to read. Nothing is looked up: the agent reads the pixels.

usage: make_video.py SCENARIO.toml OUT.mp4
Idempotent: skips the work when OUT is newer than SCENARIO and this script.
"""
import os
import subprocess
import sys
import tempfile
import tomllib

FONT = "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"
# Plate geometry in mm (= px at native size): character slot left edges for 7 and 8 characters.
SLOTS_7 = [15.5, 72.5, 151.5, 208.5, 265.5, 322.5, 379.5]
SLOTS_8 = [12, 55, 112, 155, 198, 241, 284, 327]  # new-energy: 43 mm wide chars, 480 mm plate scaled to 440
STYLES = {
    # background, text colour, border colour
    "blue": ("0x0c47b7", "white", "white"),
    "yellow": ("0xf2b705", "black", "black"),
    "green": ("0x4fc28c", "black", "0x2d8a5a"),
}


def ffmpeg(args):
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def esc(text):
    return text.replace("\\", "\\\\").replace(":", "\\:").replace("'", "\\'")


def render_plate(text, style, out_png):
    bg, fg, border = STYLES[style]
    slots, char_w = (SLOTS_8, 40) if len(text) == 8 else (SLOTS_7, 45)
    inputs, graph = [], []
    inputs += ["-f", "lavfi", "-i", f"color=c={bg}:s=440x140"]
    graph.append(f"[0]drawbox=x=4:y=4:w=432:h=132:color={border}:t=3[p0]")
    for i, ch in enumerate(text):
        # Render each glyph in its own cell and squeeze it into the plate's narrow slot.
        big = "\u4e00" <= ch <= "\u9fff"
        cell = "100x104" if big else "64x100"
        size = 100 if big else 110
        inputs += ["-f", "lavfi", "-i", f"color=c={bg}:s={cell}"]
        graph.append(
            f"[{i + 1}]drawtext=fontfile={FONT}:text='{esc(ch)}':fontcolor={fg}:fontsize={size}"
            f":x=(w-text_w)/2:y=(h-text_h)/2,scale={char_w}:90[c{i}]"
        )
        graph.append(f"[p{i}][c{i}]overlay=x={slots[i]}:y=25[p{i + 1}]")
    # The separator dot between the 2nd and 3rd characters of 7-character plates.
    last = f"p{len(text)}"
    if len(text) == 7:
        graph.append(f"[{last}]drawbox=x=127:y=66:w=9:h=9:color={fg}:t=fill[pd]")
        last = "pd"
    graph.append(f"[{last}]null[out]")
    ffmpeg([*inputs, "-filter_complex", ";".join(graph), "-map", "[out]", "-frames:v", "1", out_png])


def render_car(plate_png, colour, out_png):
    """A car seen from the front, 420x300, with its plate at the bottom centre (scaled to 150x48)."""
    graph = (
        f"[0]drawbox=x=0:y=0:w=420:h=300:color={colour}:t=fill,"
        "drawbox=x=40:y=20:w=340:h=110:color=0x1b2631:t=fill,"  # windscreen
        "drawbox=x=20:y=170:w=80:h=36:color=0xf4f6f7:t=fill,"  # headlights
        "drawbox=x=320:y=170:w=80:h=36:color=0xf4f6f7:t=fill,"
        "drawbox=x=110:y=160:w=200:h=40:color=0x212f3d:t=fill[body];"  # grille
        "[1]scale=150:48[plate];[body][plate]overlay=x=135:y=228[out]"
    )
    ffmpeg([
        "-f", "lavfi", "-i", "color=c=black:s=420x300", "-i", plate_png,
        "-filter_complex", graph, "-map", "[out]", "-frames:v", "1", out_png,
    ])


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    scenario_path, out = sys.argv[1], sys.argv[2]
    deps = [scenario_path, __file__]
    if os.path.exists(out) and all(os.path.getmtime(out) > os.path.getmtime(d) for d in deps):
        print(f"{out} is up to date", file=sys.stderr)
        return
    with open(scenario_path, "rb") as f:
        scenario = tomllib.load(f)
    video = scenario.get("video", {})
    width, height = video.get("width", 1280), video.get("height", 720)
    fps = video.get("fps", 15)
    duration = scenario["loop_s"]
    lanes = {int(k): v for k, v in video.get("lanes", {"1": 0.25, "2": 0.75}).items()}
    stop_y = int(height * video.get("stop_y", 0.45))
    speed = height / 2.0  # px/s while driving in or out
    colours = ["0xc0392b", "0xd5d8dc", "0x2e4053", "0x7d3c98", "0x1e8449", "0xb9770e"]

    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        inputs = ["-f", "lavfi", "-i", f"color=c=0x55585b:s={width}x{height}:r={fps}:d={duration}"]
        graph = [
            "[0]noise=alls=12:allf=u,"
            # pump islands between and beside the lanes, and the lane lines
            f"drawbox=x={width // 2 - 40}:y=0:w=80:h={height}:color=0x9aa0a6:t=fill,"
            f"drawbox=x={width // 2 - 20}:y={height // 3}:w=40:h=120:color=0xe74c3c:t=fill,"
            f"drawbox=x=10:y=0:w=12:h={height}:color=0xf7dc6f:t=fill,"
            f"drawbox=x={width - 22}:y=0:w=12:h={height}:color=0xf7dc6f:t=fill[s0]"
        ]
        for i, car in enumerate(scenario.get("car", [])):
            plate_png, car_png = f"{tmp}/plate{i}.png", f"{tmp}/car{i}.png"
            render_plate(car["plate"], car.get("style", "green" if len(car["plate"]) == 8 else "blue"), plate_png)
            render_car(plate_png, car.get("colour", colours[i % len(colours)]), car_png)
            inputs += ["-loop", "1", "-framerate", str(fps), "-i", car_png]
            a, d = float(car["arrive_s"]), float(car["depart_s"])
            x = int(width * lanes[int(car["fp"])]) - 210
            # drive in from the bottom, stand still, drive off at the top
            y = (f"if(lt(t,{a + 2}),{stop_y}+({a + 2}-t)*{speed},"
                 f"if(gt(t,{d - 2}),{stop_y}-(t-{d - 2})*{speed},{stop_y}))")
            graph.append(
                f"[s{i}][{i + 1}]overlay=x={x}:y='{y}':enable='between(t,{a},{d})':shortest=0:eof_action=pass[s{i + 1}]"
            )
        n = len(scenario.get("car", []))
        graph.append(f"[s{n}]trim=duration={duration},format=yuv420p[out]")
        ffmpeg([
            *inputs, "-filter_complex", ";".join(graph), "-map", "[out]",
            # A key frame every second and no B-frames, as CCTV cameras stream: a client that
            # joins a stream served from this file as it is (rtsp_server.py --passthrough)
            # decodes within a second.
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-g", str(fps), "-bf", "0",
            "-r", str(fps), out,
        ])
    print(f"wrote {out} ({duration}s, {width}x{height}@{fps})", file=sys.stderr)


if __name__ == "__main__":
    main()
