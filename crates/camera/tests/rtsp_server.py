#!/usr/bin/python3
"""A local RTSP server for the camera tests: a live H.264 test pattern, or a video file played in
a loop, on rtsp://127.0.0.1:PORT/test, from GStreamer's RTSP server (Debian:
gir1.2-gst-rtsp-server-1.0, python3-gi, gstreamer1.0-plugins-{base,good,bad,ugly}; bad has the
H.264 decoder, openh264dec, that a --file of H.264 needs).

Usage: /usr/bin/python3 rtsp_server.py PORT [FPS]
       /usr/bin/python3 rtsp_server.py PORT --file PATH [--passthrough]

PORT [FPS]: a 320x240 test pattern at FPS frames a second (25 by default).
--file PATH: the video in PATH (anything GStreamer's decodebin plays, e.g. an H.264 mp4 made by
ffmpeg) at its own size and frame rate, paced in real time and started again from its beginning
each time it ends, so it never runs dry. It is decoded and re-encoded with a key frame every
second, whatever the file's own key frames, so a client that joins decodes within a second.
--passthrough: the file's H.264 (an mp4 with key frames every second and no B-frames, as
scripts/make_video.py writes) is sent as it is, not decoded and re-encoded: a server that costs
next to no CPU, for benchmarks that run many cameras beside the agent.

Either way every client shares one live stream (a client that joins sees what the others see,
not its own start of the file). Prints "listening rtsp://127.0.0.1:PORT/test" once the port is
bound (and, with --file, once the file has been opened and its first frame decoded), and runs
until killed. Exits 2 with "missing: ..." on stderr when the GStreamer pieces are not installed
(with --file, also a decoder for the file's format), 1 when the port cannot be bound or the file
cannot be played, and 64 on a usage error.
"""

import sys
import threading


def usage(why):
    print(f"{why}\n\n{__doc__}", file=sys.stderr)
    return 64


def parse_args(argv):
    """(port, fps, file) or a usage error string."""
    positional, path, passthrough = [], None, False
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--passthrough":
            passthrough = True
            i += 1
            continue
        if arg == "--file":
            if i + 1 >= len(argv):
                return "--file needs a PATH"
            path = argv[i + 1]
            i += 2
            continue
        if arg.startswith("--file="):
            path = arg[len("--file="):]
        elif arg.startswith("-"):
            return f"unknown option {arg}"
        else:
            positional.append(arg)
        i += 1
    if not positional or len(positional) > 2:
        return "expected PORT [FPS]"
    if path is not None and len(positional) > 1:
        return "FPS is for the test pattern: a --file plays at its own frame rate"
    try:
        port = int(positional[0])
        fps = int(positional[1]) if len(positional) > 1 else 25
    except ValueError:
        return "PORT and FPS are whole numbers"
    if path == "":
        return "--file needs a PATH"
    if passthrough and path is None:
        return "--passthrough is for a --file"
    return port, fps, path, passthrough


class FileFeed:
    """Decodes the file in real time, for ever (a segment seek back to its start each time it
    ends, so the clock runs on without a gap), and hands every frame to the shared RTSP media's
    appsrc while there is one (while a client watches); without one the frame is dropped, as a
    live camera's would be."""

    def __init__(self, Gst, path, passthrough=False):
        self.Gst = Gst
        self.lock = threading.Lock()
        self.sources = []
        self.failed = None
        if passthrough:
            # Whole access units, in order: an encoded frame dropped would corrupt the rest of
            # its second.
            launch = (
                "filesrc name=file ! qtdemux ! h264parse config-interval=-1 "
                "! video/x-h264,stream-format=byte-stream,alignment=au "
                "! appsink name=sink sync=true emit-signals=true"
            )
        else:
            launch = (
                "filesrc name=file ! decodebin ! videoconvert ! video/x-raw,format=I420 "
                "! appsink name=sink sync=true emit-signals=true max-buffers=2 drop=true"
            )
        self.pipeline = Gst.parse_launch(launch)
        self.pipeline.get_by_name("file").set_property("location", path)
        self.sink = self.pipeline.get_by_name("sink")
        self.sink.connect("new-sample", self._on_sample)
        self.caps = None
        # The first seek, and the one after an EOS: flushing, from the key frame at the start.
        self.restart = Gst.SeekFlags.FLUSH | Gst.SeekFlags.SEGMENT | Gst.SeekFlags.KEY_UNIT

    def preroll(self):
        """Opens the file and decodes its first frame. Returns None, or (exit code, message)."""
        Gst = self.Gst
        self.pipeline.set_state(Gst.State.PAUSED)
        bus = self.pipeline.get_bus()
        msg = bus.timed_pop_filtered(
            30 * Gst.SECOND, Gst.MessageType.ASYNC_DONE | Gst.MessageType.ERROR
        )
        if msg is None:
            return 1, "the file did not open within 30 s"
        if msg.type == Gst.MessageType.ERROR:
            err, debug = msg.parse_error()
            missing = err.matches(
                Gst.CoreError.quark(), Gst.CoreError.MISSING_PLUGIN
            ) or err.matches(Gst.StreamError.quark(), Gst.StreamError.CODEC_NOT_FOUND)
            return (2 if missing else 1), f"{'missing: ' if missing else ''}{err.message} ({debug})"
        sample = self.sink.emit("pull-preroll")
        if sample is None:
            return 1, "no video frame in the file"
        self.caps = sample.get_caps()
        # A segment seek: at the end the pipeline posts SEGMENT_DONE instead of EOS, and the next
        # segment seek (not flushing) carries on at the same running time.
        if not self.pipeline.seek_simple(Gst.Format.TIME, self.restart, 0):
            return 1, "the file cannot be seeked, so it cannot be looped"
        return None

    def fps(self):
        s = self.caps.get_structure(0)
        ok, num, den = s.get_fraction("framerate")
        if ok and num > 0 and den > 0:
            return max(1, round(num / den))
        return 25

    def start(self, loop):
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message", self._on_message, loop)
        self.pipeline.set_state(self.Gst.State.PLAYING)

    def _on_message(self, _bus, msg, loop):
        Gst = self.Gst
        if msg.type == Gst.MessageType.SEGMENT_DONE:
            self.pipeline.seek_simple(Gst.Format.TIME, Gst.SeekFlags.SEGMENT, 0)
        elif msg.type == Gst.MessageType.EOS:
            # A demuxer that ignores segment seeks ends with EOS instead: start again (flushing).
            self.pipeline.seek_simple(Gst.Format.TIME, self.restart, 0)
        elif msg.type == Gst.MessageType.ERROR:
            err, debug = msg.parse_error()
            self.failed = f"playing the file failed: {err.message} ({debug})"
            loop.quit()

    def _on_sample(self, sink):
        Gst = self.Gst
        sample = sink.emit("pull-sample")
        if sample is None:
            return Gst.FlowReturn.OK
        with self.lock:
            sources = list(self.sources)
        if not sources:
            return Gst.FlowReturn.OK
        # The file's own timestamps restart at each loop: the appsrc stamps each frame with its
        # own running time as it is pushed (do-timestamp), so the stream's clock only moves on.
        buf = sample.get_buffer().copy()
        buf.pts = Gst.CLOCK_TIME_NONE
        buf.dts = Gst.CLOCK_TIME_NONE
        for src in sources:
            src.emit("push-buffer", buf)
        return Gst.FlowReturn.OK

    def on_media(self, _factory, media):
        src = media.get_element().get_by_name("src")
        src.set_property("caps", self.caps)
        with self.lock:
            self.sources.append(src)

        def gone(_media):
            with self.lock:
                if src in self.sources:
                    self.sources.remove(src)

        media.connect("unprepared", gone)


def main():
    parsed = parse_args(sys.argv[1:])
    if isinstance(parsed, str):
        return usage(parsed)
    port, fps, path, passthrough = parsed
    try:
        import gi

        gi.require_version("Gst", "1.0")
        gi.require_version("GstRtspServer", "1.0")
        from gi.repository import GLib, Gst, GstRtspServer
    except (ImportError, ValueError) as e:
        print(f"missing: python3-gi or gir1.2-gst-rtsp-server-1.0 ({e})", file=sys.stderr)
        return 2
    Gst.init(None)
    needed = ["x264enc", "rtph264pay"]
    if path is None:
        needed += ["videotestsrc"]
    elif passthrough:
        needed = ["rtph264pay", "filesrc", "qtdemux", "h264parse", "appsink", "appsrc"]
    else:
        needed += ["filesrc", "decodebin", "videoconvert", "appsink", "appsrc"]
    absent = [e for e in needed if Gst.ElementFactory.find(e) is None]
    if absent:
        print(f"missing: GStreamer elements {' '.join(absent)}", file=sys.stderr)
        return 2

    factory = GstRtspServer.RTSPMediaFactory()
    feed = None
    if path is None:
        # One shared live pipeline for every client. A key frame every second and the parameter
        # sets in band, so a client that (re)connects decodes within a second.
        launch = (
            "( videotestsrc is-live=true pattern=ball "
            f"! video/x-raw,width=320,height=240,framerate={fps}/1 "
            f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} "
            "! rtph264pay name=pay0 pt=96 config-interval=1 )"
        )
    else:
        feed = FileFeed(Gst, path, passthrough)
        failed = feed.preroll()
        if failed is not None:
            code, why = failed
            print(why if code == 2 else f"cannot play {path}: {why}", file=sys.stderr)
            return code
        key = feed.fps()
        # The same encoding as the test pattern's, fed by the file's frames.
        launch = (
            "( appsrc name=src is-live=true format=time do-timestamp=true "
            "! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )"
        ) if passthrough else (
            "( appsrc name=src is-live=true format=time do-timestamp=true "
            f"! videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={key} "
            "! rtph264pay name=pay0 pt=96 config-interval=1 )"
        )
        factory.connect("media-configure", feed.on_media)
    factory.set_launch(launch)
    factory.set_shared(True)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    server.get_mount_points().add_factory("/test", factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    if feed is not None:
        feed.start(loop)
    print(f"listening rtsp://127.0.0.1:{port}/test", flush=True)
    loop.run()
    if feed is not None and feed.failed:
        print(feed.failed, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
