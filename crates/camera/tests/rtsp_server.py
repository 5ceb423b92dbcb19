#!/usr/bin/python3
"""A local RTSP server for the camera tests: a live H.264 test pattern on
rtsp://127.0.0.1:PORT/test, from GStreamer's RTSP server (Debian: gir1.2-gst-rtsp-server-1.0,
python3-gi, gstreamer1.0-plugins-{base,good,ugly}).

Usage: /usr/bin/python3 rtsp_server.py PORT [FPS]

Prints "listening rtsp://127.0.0.1:PORT/test" once the port is bound, and runs until killed.
Exits 2 with "missing: ..." on stderr when the GStreamer pieces are not installed, and 1 when the
port cannot be bound.
"""

import sys


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 64
    port = int(sys.argv[1])
    fps = int(sys.argv[2]) if len(sys.argv) > 2 else 25
    try:
        import gi

        gi.require_version("Gst", "1.0")
        gi.require_version("GstRtspServer", "1.0")
        from gi.repository import GLib, Gst, GstRtspServer
    except (ImportError, ValueError) as e:
        print(f"missing: python3-gi or gir1.2-gst-rtsp-server-1.0 ({e})", file=sys.stderr)
        return 2
    Gst.init(None)
    absent = [e for e in ("videotestsrc", "x264enc", "rtph264pay") if Gst.ElementFactory.find(e) is None]
    if absent:
        print(f"missing: GStreamer elements {' '.join(absent)}", file=sys.stderr)
        return 2

    # One shared live pipeline for every client. A key frame every second and the parameter sets
    # in band, so a client that (re)connects decodes within a second.
    launch = (
        "( videotestsrc is-live=true pattern=ball "
        f"! video/x-raw,width=320,height=240,framerate={fps}/1 "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} "
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(True)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    server.get_mount_points().add_factory("/test", factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{port}", file=sys.stderr)
        return 1
    print(f"listening rtsp://127.0.0.1:{port}/test", flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
