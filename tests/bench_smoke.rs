//! Smoke run of the benchmark (`bench/run --n 20 --quick`), so the harness cannot rot: it must
//! run to the end and report a number for every figure, for taskmasterd and for supervisord,
//! the output capture figures included (at 10 MB and 50 writers for 2 s).
//!
//! The full benchmark is not part of the test suite (it takes many minutes and wants a quiet
//! machine); see bench/README.md. This run includes supervisord: it is the half of the harness
//! most likely to break (a pip install, a config format, an XML-RPC client), and at N = 20 it
//! adds well under a minute. The first run installs supervisor from PyPI into bench/.venv and
//! builds the benchmark client (bench/client) into the target directory; later runs reuse both.
//! It uses the taskmasterd and taskctl that cargo built for this test run (`--bin-dir`), so it
//! builds no second profile of the daemon.
//!
//! Runs in about a minute once bench/.venv and the client exist (two to three the first time).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

/// Every figure the table reports for taskmasterd.
const TASKMASTERD_FIGURES: &[&str] = &[
    "startup_ms",
    "rss_mb",
    "hwm_mb",
    "hwm_end_mb",
    "status_cli_ms",
    "status_rpc_ms",
    "restart_p50_ms",
    "restart_p99_ms",
    "restart_stamped_p50_ms",
    "restart_stamped_p99_ms",
    "idle_ticks",
    "idle_wakeups",
    "shutdown_ms",
    "events_lost",
    "events_p50_ms",
    "events_p99_ms",
    "startup_capture_ms",
    "rss_capture_mb",
];

/// The output capture figures that do not depend on N (`capture` in results.json), for the
/// direct write (the floor), taskmasterd and supervisord.
const CAPTURE_FLOOR_FIGURES: &[&str] = &["throughput_s"];
const CAPTURE_TASKMASTERD_FIGURES: &[&str] = &[
    "throughput_s",
    "throughput_ts_s",
    "cpu_per_gb_s",
    "cpu_per_gb_ts_s",
    "lines_cpu_pct",
    "lines_rss_mb",
    "lines_lost",
];
/// supervisord has no timestamps.
const CAPTURE_SUPERVISORD_FIGURES: &[&str] = &[
    "throughput_s",
    "cpu_per_gb_s",
    "lines_cpu_pct",
    "lines_rss_mb",
    "lines_lost",
];

/// supervisord has no event stream, and one more restart figure (kill -> exec).
const SUPERVISORD_FIGURES: &[&str] = &[
    "startup_ms",
    "rss_mb",
    "hwm_mb",
    "hwm_end_mb",
    "status_cli_ms",
    "status_rpc_ms",
    "restart_p50_ms",
    "restart_p99_ms",
    "restart_exec_p50_ms",
    "idle_ticks",
    "idle_wakeups",
    "shutdown_ms",
];

fn number(figures: &Value, key: &str, who: &str) -> f64 {
    let value = figures
        .get(key)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{who}: {key} is not a number: {:?}", figures.get(key)));
    assert!(value.is_finite() && value >= 0.0, "{who}: {key} = {value}");
    value
}

#[test]
fn quick_run_reports_every_figure() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().expect("temp dir");
    let bin_dir: PathBuf = Path::new(env!("CARGO_BIN_EXE_taskmasterd"))
        .parent()
        .expect("bin dir")
        .into();
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let status = Command::new(root.join("bench/run"))
        .args(["--n", "20", "--quick", "--profile", profile])
        .arg("--bin-dir")
        .arg(&bin_dir)
        .arg("--out")
        .arg(out.path())
        .current_dir(root)
        .status()
        .expect("run bench/run");
    assert!(status.success(), "bench/run failed: {status}");

    let text = std::fs::read_to_string(out.path().join("results.json")).expect("results.json");
    let report: Value = serde_json::from_str(&text).expect("results.json is JSON");
    let run = &report["results"]["20"];
    number(&run["floor"], "spawn_ms", "floor");
    number(&run["floor"], "stop_ms", "floor");
    for (who, keys) in [
        ("taskmasterd", TASKMASTERD_FIGURES),
        ("supervisord", SUPERVISORD_FIGURES),
    ] {
        let system = &run[who];
        assert_eq!(
            system["errors"],
            serde_json::json!({}),
            "{who} reported errors"
        );
        for key in keys {
            number(&system["figures"], key, who);
        }
        assert_eq!(
            system["figures"]["shutdown_survivors"], 0,
            "{who} left programs behind"
        );
    }
    let events = &run["taskmasterd"]["figures"]["events_report"];
    assert_eq!(
        events["lost_total"], 0,
        "a watcher that keeps up lost events"
    );
    assert!(
        events["deliveries"].as_u64().unwrap_or(0) > 0,
        "no event was delivered"
    );

    let capture = &report["capture"];
    for (who, keys) in [
        ("floor", CAPTURE_FLOOR_FIGURES),
        ("taskmasterd", CAPTURE_TASKMASTERD_FIGURES),
        ("supervisord", CAPTURE_SUPERVISORD_FIGURES),
    ] {
        let system = &capture[who];
        assert_eq!(
            system["errors"],
            serde_json::json!({}),
            "capture: {who} reported errors"
        );
        for key in keys {
            number(&system["figures"], key, &format!("capture {who}"));
        }
    }
    for who in ["taskmasterd", "supervisord"] {
        let figures = &capture[who]["figures"];
        assert!(
            number(figures, "lines_written", who) > 0.0,
            "capture: no {who} writer wrote a line"
        );
    }
    // supervisord captures without losing lines: a loss there is the harness's checker wrong.
    assert_eq!(
        number(
            &capture["supervisord"]["figures"],
            "lines_lost",
            "supervisord"
        ),
        0.0,
        "the line check finds lines lost under supervisord"
    );

    let table = std::fs::read_to_string(out.path().join("results.md")).expect("results.md");
    assert!(
        table.contains("## N = 20") && table.contains("## Output capture"),
        "results.md has no table:\n{table}"
    );
}
