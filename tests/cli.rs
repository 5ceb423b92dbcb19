//! The agent's command line as a technician uses it: check-config, dart decode, ifsf watch and
//! decode, and what `run` prints.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use support::*;

fn agent(args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(binary("forecourt-agent"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A station of one camera `gate` at `rtsp://admin:Zq7-cam-secret@127.0.0.1:{camera_port}/stream1`
/// and an HQ broker nobody listens on (port 1), `uplink_extra` added to its `[uplink]`.
fn camera_only_config(
    dir: &std::path::Path,
    camera_port: u16,
    uplink_extra: &str,
) -> std::path::PathBuf {
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "station_id = \"x\"\ndata_dir = \"{data}\"\n[plates]\nmodels_dir = \"{models}\"\n\
             [[camera]]\nname = \"gate\"\nurl = \"rtsp://admin:Zq7-cam-secret@127.0.0.1:{camera_port}/stream1\"\n\
             [uplink]\nhost = \"127.0.0.1\"\nport = 1\n{uplink_extra}",
            data = dir.join("data").display(),
            models = repo_root().join("models").display(),
        ),
    )
    .unwrap();
    config
}

#[test]
fn check_config_accepts_the_demo_and_rejects_a_broken_file_with_its_line() {
    for other in ["config/demo-ifsf-tcp.toml", "config/demo-ifsf-fdc.toml"] {
        let path = repo_root().join(other);
        let (ok, _, stderr) = agent(&["check-config", path.to_str().unwrap()], "");
        assert!(ok, "{other}: {stderr}");
    }
    let demo = repo_root().join("config/demo.toml");
    let (ok, stdout, stderr) = agent(&["check-config", demo.to_str().unwrap()], "");
    assert!(ok, "{stderr}");
    assert!(stdout.contains(": ok"));

    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.toml");
    let text = std::fs::read_to_string(&demo)
        .unwrap()
        .replace("max_fps = 4.0", "max_fps = \"fast\"");
    std::fs::write(&broken, &text).unwrap();
    let line = text.lines().position(|l| l.contains("\"fast\"")).unwrap() + 1;
    let (ok, _, stderr) = agent(&["check-config", broken.to_str().unwrap()], "");
    assert!(!ok, "a broken config must exit non-zero");
    assert!(
        stderr.contains(&format!("broken.toml:{line}:")) && stderr.contains("invalid type"),
        "{stderr}"
    );
}

#[test]
fn run_refuses_an_invalid_config_with_the_same_message() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("agent.toml");
    std::fs::write(
        &broken,
        "station_id = \"x\"\ndata_dir = \"d\"\nbogus = 1\n[uplink]\nhost = \"h\"\n",
    )
    .unwrap();
    let (ok, _, stderr) = agent(&["run", "--config", broken.to_str().unwrap()], "");
    assert!(!ok);
    assert!(
        stderr.contains("agent.toml:3:1: unknown field `bogus`"),
        "{stderr}"
    );
}

#[test]
fn dart_decode_prints_the_fact_sheet_frames_as_json() {
    let (ok, stdout, stderr) = agent(
        &["dart", "decode", "--from", "pump"],
        "53 30 02 08 00 00 12 11 00 00 01 86 03 04 00 15 39 00 01 01 05 AA CF 03 FA\n50 70 FA\nnot hex\n",
    );
    assert!(ok, "{stderr}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert_eq!(lines[0]["crc_ok"], true);
    assert_eq!(lines[0]["transactions"][0]["volume"]["raw"], 1211);
    assert_eq!(
        lines[0]["transactions"][2]["status"]["name"],
        "filling_completed"
    );
    assert_eq!(lines[1]["frame"], "eot");
    assert!(lines[2]["error"].is_string());
}

/// `ifsf watch` joins a simulated node over TCP and shows its traffic and the sales, sending only
/// reads and acknowledges (the simulator exits non-zero if it got a write); `ifsf decode` reads
/// a message it showed back from hex.
#[test]
fn ifsf_watch_shows_the_traffic_and_decode_reads_it_back() {
    let dir = tempfile::tempdir().unwrap();
    // One customer at fp 1, lifting 1 s after the node starts and paying a second later.
    let scenario = dir.path().join("one-sale.toml");
    std::fs::write(
        &scenario,
        "[[car]]\nfp = 1\narrive_s = 0.0\ndepart_s = 5.0\n\
         fill = { nozzle = 1, start_s = 1.0, end_s = 2.0, volume = \"10.00\" }\n",
    )
    .unwrap();
    let (mut sim, address) = start_lan_simulator(
        dir.path(),
        &[
            "--protocol",
            "ifsf-tcp",
            "--fps",
            "2",
            "--scenario",
            scenario.to_str().unwrap(),
        ],
        Stdio::null(),
    );
    let address = address.to_string();
    let (ok, stdout, stderr) = agent(&["ifsf", "watch", &address, "--seconds", "6"], "");
    assert!(ok, "{stderr}");
    assert!(send_signal(sim.child.id(), "INT"));
    let status = sim.wait_for_exit(std::time::Duration::from_secs(10));
    assert!(status.is_some_and(|s| s.success()), "the node got a write");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["link"], "up", "{stdout}");
    let sent: Vec<&serde_json::Value> = lines.iter().filter(|l| l["dir"] == "out").collect();
    assert!(!sent.is_empty());
    assert!(
        sent.iter()
            .all(|l| l["kind"] == "read" || l["kind"] == "ack"),
        "{stdout}"
    );
    let sale = lines
        .iter()
        .find(|l| l["dir"] == "in" && l["state"] == "payable")
        .unwrap_or_else(|| panic!("no sale shown:\n{stdout}"));
    assert!(
        lines
            .iter()
            .any(|l| l["event"]["kind"] == "sale_completed"
                && l["event"]["volume"] == sale["volume"]),
        "{stdout}"
    );

    // The sale message, rebuilt from what watch showed, decodes to the same figures.
    let items: Vec<(u8, Vec<u8>)> = sale["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            let value = item["value"]
                .as_str()
                .unwrap()
                .split_whitespace()
                .map(|b| u8::from_str_radix(b, 16).unwrap())
                .collect();
            (item["id"].as_u64().unwrap() as u8, value)
        })
        .collect();
    let data_items: Vec<ifsf_protocol::DataItem<'_>> = items
        .iter()
        .map(|(id, value)| ifsf_protocol::DataItem { id: *id, value })
        .collect();
    let db: Vec<u8> = sale["db"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    let message = ifsf_protocol::Message::with_items(
        ifsf_protocol::NodeAddress::new(2, 9),
        ifsf_protocol::NodeAddress::new(1, 1),
        ifsf_protocol::MessageKind::UnsolicitedNoAck,
        1,
        &db,
        &data_items,
    )
    .unwrap();
    let hex: Vec<String> = message
        .encode()
        .unwrap()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let (ok, stdout, stderr) = agent(&["ifsf", "decode"], &format!("{}\n", hex.join(" ")));
    assert!(ok, "{stderr}");
    let decoded: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(decoded["volume"], sale["volume"]);
    assert_eq!(decoded["amount"], sale["amount"]);
    assert_eq!(decoded["seq"], sale["seq"]);
}

/// A default model file that is not the one models/MANIFEST names (here a changed dictionary)
/// stops the agent at start with a message naming the file; nothing runs on a wrong model.
#[test]
fn run_refuses_a_model_file_that_does_not_match_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    for name in ["clp_det.onnx", "clp_v2_c_rec.onnx", "clp_dict.txt"] {
        std::fs::copy(repo_root().join("models").join(name), models.join(name)).unwrap();
    }
    let mut dict = std::fs::read(models.join("clp_dict.txt")).unwrap();
    dict.extend_from_slice("X\n".as_bytes());
    std::fs::write(models.join("clp_dict.txt"), dict).unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "station_id = \"x\"\ndata_dir = \"{}\"\n[plates]\nmodels_dir = \"{}\"\n[uplink]\nhost = \"127.0.0.1\"\nport = 1\n",
            dir.path().join("data").display(),
            models.display()
        ),
    )
    .unwrap();
    let (ok, _, stderr) = agent(
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--seconds",
            "5",
        ],
        "",
    );
    assert!(!ok, "the agent ran on a changed model:\n{stderr}");
    assert!(
        stderr.contains("clp_dict.txt") && stderr.contains("models/MANIFEST"),
        "{stderr}"
    );
}

/// A camera URL's password never reaches the output, not through our logs nor through OpenCV or
/// FFmpeg: the agent opens `rtsp://user:pass@...` against a local server that refuses it (RTSP
/// 401) again and again, and prints only the redacted URL. MQTT credentials over plain TCP are
/// warned about, never printed.
#[test]
fn credentials_are_never_printed() {
    use std::io::Read;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = asked.clone();
    std::thread::spawn(move || {
        for mut conn in server.incoming().flatten() {
            let mut request = [0u8; 4096];
            if conn.read(&mut request).is_ok_and(|n| n > 0) {
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = conn.write_all(
                    b"RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\n\
                      WWW-Authenticate: Basic realm=\"cam\"\r\n\r\n",
                );
            }
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let config = camera_only_config(
        dir.path(),
        port,
        "username = \"hq\"\npassword = \"mqtt-Pw-9x-secret\"\n",
    );
    let (ok, stdout, stderr) = agent(
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--seconds",
            "6",
        ],
        "",
    );
    let output = format!("{stdout}{stderr}");
    assert!(ok, "the agent did not run:\n{output}");
    assert!(
        asked.load(Ordering::SeqCst) >= 2,
        "the camera was not tried with its credentials twice:\n{output}"
    );
    assert!(
        !output.contains("secret"),
        "a password was printed:\n{output}"
    );
    assert!(output.contains("rtsp://***@127.0.0.1"), "{output}");
    assert!(output.contains("plain TCP"), "{output}");
}

/// FFmpeg's own messages come out as the agent's structured log lines (target `ffmpeg`, the camera
/// named), not as FFmpeg's raw `[tcp @ 0x7ff6c00040c0] Connection to ... failed` lines on stderr
/// beside them: a camera whose port refuses connections, retried for 3 s. No credentials either.
#[test]
fn ffmpeg_messages_are_structured_log_lines() {
    let closed = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = camera_only_config(dir.path(), closed, "");
    let (ok, stdout, stderr) = agent(
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--seconds",
            "3",
        ],
        "",
    );
    let output = format!("{stdout}{stderr}");
    assert!(ok, "the agent did not run:\n{output}");
    let raw: Vec<&str> = output
        .lines()
        .filter(|l| l.starts_with('[') || l.contains(" @ 0x"))
        .collect();
    assert!(raw.is_empty(), "raw FFmpeg lines: {raw:#?}\n{output}");
    let refused = format!("Connection to tcp://127.0.0.1:{closed}");
    assert!(
        output.lines().any(|l| l.contains(" WARN ffmpeg: ")
            && l.contains(&refused)
            && l.contains("camera=\"gate\"")),
        "no structured ffmpeg line for the refused connection:\n{output}"
    );
    assert!(
        !output.contains("secret"),
        "a password was printed:\n{output}"
    );
}

/// `check-config --probe`, as an installer runs it on a station: a good set-up passes with a
/// summary; each installer mistake is named at its line with a hint (serial path, data_dir the
/// service cannot write, camera unreachable: errors, exit non-zero; a fuelling point without a
/// zone, a zone without a fuelling point, a bus master that authorises nothing: warnings).
#[test]
fn check_config_probe_names_each_installer_mistake_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, port) = start_mosquitto(dir.path());
    let (_pty, tty, _) = pty_pair(dir.path());
    let video = demo_video();
    let closed_port = free_port();
    let config = |data_dir: &str, camera: &str, tty: &str, authorize: bool, fps: &str| {
        format!(
            "station_id = \"probe\"\n\
             data_dir = \"{data_dir}\"\n\
             [plates]\nmodels_dir = \"{}\"\n\
             [[camera]]\nname = \"cam1\"\nurl = \"{camera}\"\n\
             [[dispenser]]\nprotocol = \"dart\"\nport = \"{tty}\"\nauto_authorize = {authorize}\n\
             fps = [\n  {{ fp = 1, address = 0x50 }},\n  {{ fp = 2, address = 0x51 }},\n]\n\
             {fps}\
             [uplink]\nhost = \"127.0.0.1\"\nport = {port}\n",
            repo_root().join("models").display(),
        )
    };
    let zone = |fp: u8, x0: f32, x1: f32| {
        format!(
            "[[fp]]\nfp = {fp}\nzones = [{{ camera = \"cam1\", polygon = [[{x0}, 0.0], [{x1}, 0.0], [{x1}, 1.0], [{x0}, 1.0]] }}]\n"
        )
    };
    let both = zone(1, 0.0, 0.5) + &zone(2, 0.5, 1.0);
    let probe = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let (ok, stdout, stderr) = agent(&["check-config", "--probe", path.to_str().unwrap()], "");
        (ok, format!("{stdout}{stderr}"))
    };
    let line_of =
        |text: &str, needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let data = dir.path().join("data").display().to_string();
    let tty = tty.display().to_string();

    // Good: passes, and says what it found.
    let good = config(&data, video.to_str().unwrap(), &tty, true, &both);
    let (ok, out) = probe("good.toml", &good);
    assert!(ok, "{out}");
    assert!(!out.contains("error:"), "{out}");
    assert!(
        out.contains("1 camera(s), 1 sent a frame") && out.contains("broker reachable"),
        "{out}"
    );

    // Errors: a serial path that does not exist, a data_dir nothing can write, a camera on a
    // port nothing listens on.
    let rtsp = format!("rtsp://127.0.0.1:{closed_port}/stream");
    let bad = config(
        "/proc/forecourt-probe/data",
        &rtsp,
        "/dev/ttyNOSUCH9",
        true,
        &both,
    );
    let (ok, out) = probe("bad.toml", &bad);
    assert!(!ok, "errors must exit non-zero: {out}");
    for (needle, said) in [
        (
            "/dev/ttyNOSUCH9",
            "serial port /dev/ttyNOSUCH9 cannot be opened",
        ),
        ("/proc/forecourt-probe", "is not writable"),
        (rtsp.as_str(), "camera cam1 sent no frame"),
    ] {
        let at = format!(
            "error: {}:{}:",
            dir.path().join("bad.toml").display(),
            line_of(&bad, needle)
        );
        assert!(
            out.lines()
                .any(|l| l.starts_with(&at) && l.contains(said) && l.contains("(hint: ")),
            "want {at} ... {said:?} in:\n{out}"
        );
    }

    // Warnings: fp 2 on the bus has no zone, fp 3's zone is on no bus, and the bus master does
    // not authorise. Nothing that stops the station: exit zero.
    let loose = config(
        &data,
        video.to_str().unwrap(),
        &tty,
        false,
        &(zone(1, 0.0, 0.5) + &zone(3, 0.5, 1.0)),
    );
    let (ok, out) = probe("loose.toml", &loose);
    assert!(ok, "warnings alone must not fail: {out}");
    let file = dir.path().join("loose.toml").display().to_string();
    for (needle, said) in [
        ("fp = 2, address", "fuelling point 2 has no zone"),
        (
            "fp = 3",
            "fuelling point 3 has zones but no [[dispenser]] reports it",
        ),
        ("[[dispenser]]", "bus master without auto_authorize"),
    ] {
        let at = format!("warning: {file}:{}:", line_of(&loose, needle));
        assert!(
            out.lines().any(|l| l.starts_with(&at) && l.contains(said)),
            "want {at} ... {said:?} in:\n{out}"
        );
    }
}

/// `zones --snapshot` on the demo station's camera (its video, the real models): a PNG of the
/// requested width, and a legend naming each lane's car in its own fuelling point's zone.
#[test]
fn zones_snapshot_draws_each_lanes_car_in_its_zone() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, demo_config(dir.path())).unwrap();
    let out = dir.path().join("zones");
    // 14 s of the video: its first car (FP 1's lane) from 3 s, the second (FP 2's) from 10 s.
    let (ok, stdout, stderr) = agent(
        &[
            "zones",
            "--config",
            config.to_str().unwrap(),
            "--snapshot",
            out.to_str().unwrap(),
            "--seconds",
            "14",
            "--width",
            "320",
        ],
        "",
    );
    assert!(ok, "{stdout}\n{stderr}");
    let png = std::fs::read(out.join("cam1.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // The IHDR chunk: width and height, big-endian.
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((width, height), (320, 180));
    let legend = std::fs::read_to_string(out.join("cam1.txt")).unwrap();
    for (plate, fp) in [("苏E05EV8", 1), ("京A12345", 2)] {
        assert!(
            legend
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{plate}  FP {fp}  "))),
            "{plate} not read in FP {fp}'s zone:\n{legend}"
        );
    }
}

/// A wrong serial path is visible to HQ: the `health` message's sale source is down, counts its
/// failed opens and names the port (the agent keeps running and retrying).
#[test]
fn a_wrong_serial_path_shows_on_health() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, port) = start_mosquitto(dir.path());
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        demo_config(dir.path())
            .replace(
                "port = \"../var/demo/pump-agent.pty\"",
                "port = \"/dev/ttyFORECOURT-missing\"",
            )
            .replace(
                "port = 18830",
                &format!("port = {port}\nhealth_interval_s = 1"),
            ),
    )
    .unwrap();
    let heard = dir.path().join("health.log");
    let mut hq = Proc::spawn(
        "mosquitto_sub",
        Command::new("mosquitto_sub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-t",
                "forecourt/+/health",
                "-C",
                "4",
            ])
            .stdout(std::fs::File::create(&heard).unwrap())
            .stderr(std::fs::File::create(dir.path().join("sub.err")).unwrap()),
    );
    let mut agent = Proc::spawn(
        "forecourt-agent",
        Command::new(binary("forecourt-agent"))
            .args(["run", "--seconds", "60", "--config"])
            .arg(&config)
            .stderr(Stdio::null()),
    );
    // Four reports: the first may come before the first open was tried.
    let done = hq.wait_for_exit(std::time::Duration::from_secs(60));
    agent.terminate(std::time::Duration::from_secs(10));
    let text = std::fs::read_to_string(&heard).unwrap();
    let sub_said = std::fs::read_to_string(dir.path().join("sub.err")).unwrap_or_default();
    assert!(
        done.is_some_and(|s| s.success()) && text.lines().count() >= 4,
        "fewer than 4 health messages in 60 s ({done:?}, mosquitto_sub: {sub_said}):\n{text}"
    );
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let source = &last["agent"]["sources"][0];
    assert_eq!(source["name"], "dart /dev/ttyFORECOURT-missing", "{last}");
    assert_eq!(source["up"], false, "{last}");
    assert!(source["open_failures"].as_u64() >= Some(1), "{last}");
    assert_eq!(source["sent"], 0, "{last}");
    assert!(
        source["last_problem"]
            .as_str()
            .is_some_and(|p| p.contains("/dev/ttyFORECOURT-missing")),
        "{last}"
    );
    assert_eq!(source["fps"], serde_json::json!([1, 2]), "{last}");
}
