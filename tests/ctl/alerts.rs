//! `taskctl alerts test RULE`: a line per sink of the rule, and its exit status.

use crate::{harness::ctl, support::*};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_test_prints_how_each_sink_took_the_test_alert() {
    let dir = tempfile::tempdir().unwrap();
    let syslog = Syslog::bind(&dir.path().join("syslog.sock"));
    let webhook = Webhook::start().await;
    let silent = Silent::bind();
    let config = Config::new()
        .program(Program::sleeper("sleeper"))
        .alerts(&format!(
            "
        sinks:
          log: {{type: syslog, path: '{{dir}}/syslog.sock'}}
          hook: {{type: webhook, url: '{}'}}
          stuck: {{type: webhook, url: 'http://127.0.0.1:{}/', timeout: 300ms}}
        rules:
          crashes: {{events: fatal, sinks: [log, hook]}}
          all: {{events: fatal, sinks: [log, stuck]}}
        ",
            webhook.url, silent.port
        ));
    let daemon = Daemon::launch(config).in_dir(dir).start().await;
    let run = ctl(&daemon.socket, &["alerts", "test", "crashes"]);
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (0, "log: delivered\nhook: delivered\n", "")
    );
    let requests = webhook.wait("the test alert", |r| !r.is_empty()).await;
    assert_eq!(requests[0].body["alert"], "test");
    assert_eq!(requests[0].body["rule"], "crashes");
    assert!(requests[0].body["by"].as_str().unwrap().starts_with("uid "));
    syslog.wait("the test alert", |m| m.len() == 1).await;
    let run = ctl(&daemon.socket, &["alerts", "test", "all"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (1, "log: delivered\nstuck: ERROR (no answer within 300ms)\n")
    );
    let run = ctl(&daemon.socket, &["alerts", "test", "nope"]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr.trim_end(),
        "no alert rule `nope`; the rules are all, crashes"
    );
    let run = ctl(&daemon.socket, &["alerts", "tset", "all"]);
    assert_eq!(run.code, 2, "{run:?}");
}
