//! Alerts against real receivers the tests start: a syslog socket, a webhook, SMTP servers
//! (STARTTLS and TLS, with a login). The right events arrive with the right fields; a storm
//! is a bounded number of alerts and a count; a dead receiver blocks nothing; `alerts test`;
//! a reload swaps the rules and keeps what is queued.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use taskmaster::proto::{self, EventKind, State};

use crate::support::*;

/// The machine's host name, as alerts carry it.
fn host_name() -> String {
    nix::unistd::gethostname()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Every event of the daemon from now on.
async fn events(client: &mut Client) -> tonic::Streaming<proto::Event> {
    let request = proto::WatchEventsRequest::default();
    client.watch_events(request).await.unwrap().into_inner()
}

/// Every event of the daemon from its first.
async fn all_events(client: &mut Client) -> tonic::Streaming<proto::Event> {
    let request = proto::WatchEventsRequest {
        since: Some(0),
        ..Default::default()
    };
    client.watch_events(request).await.unwrap().into_inner()
}

/// The alert kind of a webhook request (`unexpected_exit`, `digest`, ...) and its instance.
fn alert_of(request: &Request) -> (String, String) {
    let kind = request.body["alert"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let instance = request.body["event"]["instance"]
        .as_str()
        .unwrap_or_default();
    (kind, instance.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_sink_gets_the_events_its_rules_match_with_their_fields() {
    let dir = tempfile::tempdir().unwrap();
    let certificates = Certificates::new();
    write_file(dir.path(), "ca.pem", &certificates.ca, 0o644);
    let token = "alert-token-0123456789abcdef";
    token_file(dir.path(), "hook.token", token);
    write_file(dir.path(), "smtp.password", "mail secret\n", 0o600);
    let syslog = Syslog::bind(&dir.path().join("syslog.sock"));
    let webhook = Webhook::start().await;
    let starttls = Smtp::start(SmtpSecurity::StartTls, &certificates, "tm", "mail secret").await;
    let tls = Smtp::start(SmtpSecurity::Tls, &certificates, "tm", "mail secret").await;
    let config = Config::new()
        .program(
            Program::new("crasher", "sh -c 'echo boom >&2; exit 3'")
                .starttime(0.0)
                .autorestart("never"),
        )
        .program(Program::new("broken", "/nonexistent/taskmaster-test").startretries(1))
        .program(Program::sleeper("quiet"))
        .alerts(&format!(
            "
            sinks:
              log: {{type: syslog, path: '{{dir}}/syslog.sock', facility: local0}}
              hook:
                type: webhook
                url: {}
                headers: {{X-Team: ops}}
                token_file: hook.token
              mail:
                type: email
                server: localhost
                port: {}
                username: tm
                password_file: smtp.password
                from: Taskmaster <tm@example.com>
                to: ops@example.com
                ca: ca.pem
              tls-mail:
                type: email
                server: localhost
                port: {}
                tls: tls
                username: tm
                password_file: smtp.password
                from: tm@example.com
                to: [ops@example.com, dev@example.com]
                ca: ca.pem
            rules:
              crashes:
                events: [unexpected_exit, backoff, fatal]
                programs: [crasher, broken, quiet]
                sinks: [log, hook, mail]
              lifecycle:
                events: [daemon_start, daemon_stop]
                sinks: [log, tls-mail]
            ",
            webhook.url, starttls.port, tls.port
        ));
    let mut daemon = Daemon::launch(config).in_dir(dir).start().await;
    let mut client = daemon.client().await;
    wait_state(&mut client, "broken", State::Fatal).await;
    let host = host_name();

    // The webhook: a POST of JSON per alert, with the configured headers and the token.
    let requests = webhook
        .wait("the crash, the backoff and the fatal", |requests| {
            requests.len() >= 3
        })
        .await;
    let mut alerts: Vec<(String, String)> = requests.iter().map(alert_of).collect();
    alerts.sort();
    assert_eq!(
        alerts,
        [
            ("backoff".to_string(), "broken".to_string()),
            ("fatal".to_string(), "broken".to_string()),
            ("unexpected_exit".to_string(), "crasher".to_string()),
        ]
    );
    let exit = (requests.iter())
        .find(|request| alert_of(request).0 == "unexpected_exit")
        .unwrap();
    assert_eq!(
        (exit.method.as_str(), exit.path.as_str()),
        ("POST", "/alerts")
    );
    assert_eq!(exit.headers["authorization"], format!("Bearer {token}"));
    assert_eq!(exit.headers["x-team"], "ops");
    assert_eq!(exit.headers["content-type"], "application/json");
    let body = &exit.body;
    assert_eq!(body["host"], host.as_str());
    assert_eq!(body["rule"], "crashes");
    assert_eq!(body["severity"], "error");
    assert_eq!(body["count"], 1);
    assert_eq!(body["daemon_pid"], daemon.pid());
    let event = &body["event"];
    assert_eq!(event["kind"], "EXITED");
    assert_eq!(event["program"], "crasher");
    assert_eq!(event["exit_code"], 3);
    assert_eq!(event["expected"], false);
    assert_eq!(event["new_state"], "EXITED");
    assert!(
        event["last_stderr"].as_str().unwrap().contains("boom"),
        "{body}"
    );
    assert!(event["pid"].as_u64().unwrap() > 0, "{body}");
    let status = daemon_info(&mut client).await;
    assert_eq!(body["run"], status.run);
    let fatal = (requests.iter())
        .find(|request| alert_of(request).0 == "fatal")
        .unwrap();
    assert_eq!(fatal.body["severity"], "critical");
    assert!(
        (fatal.body["event"]["message"].as_str().unwrap()).contains("gave up after 2 tries"),
        "{}",
        fatal.body
    );

    // Syslog: RFC 5424, local0 (16 * 8) plus the severity, the daemon's start too.
    let messages = syslog
        .wait("the daemon's start and the crash", |messages| {
            messages.iter().any(|m| m.contains(" EXITED "))
                && messages.iter().any(|m| m.contains(" DAEMON_STARTED "))
        })
        .await;
    let exited = messages.iter().find(|m| m.contains(" EXITED ")).unwrap();
    let prefix = "<131>1 ".to_string();
    assert!(exited.starts_with(&prefix), "{exited}");
    let fields: Vec<&str> = exited.splitn(8, ' ').collect();
    // PRI+VERSION, TIMESTAMP, HOSTNAME, APP-NAME, PROCID, MSGID, SD..., MSG.
    assert!(
        fields[1].ends_with('Z') && fields[1].contains('T'),
        "{exited}"
    );
    let stamp = chrono::DateTime::parse_from_rfc3339(fields[1]);
    assert!(stamp.is_ok(), "{exited}");
    assert_eq!(fields[2], host);
    assert_eq!(fields[3], "taskmasterd");
    assert_eq!(fields[4], daemon.pid().to_string());
    assert_eq!(fields[5], "EXITED");
    assert!(fields[6].starts_with("[taskmaster@32473"), "{exited}");
    for param in [
        "rule=\"crashes\"",
        "alert=\"unexpected_exit\"",
        "severity=\"error\"",
        "instance=\"crasher\"",
        "exit_code=\"3\"",
    ] {
        assert!(exited.contains(param), "{param} in {exited}");
    }
    assert!(
        exited.ends_with(
            "crasher exited unexpectedly: exit status 3 (unexpected) | last stderr: boom"
        ),
        "{exited}"
    );
    let started = messages
        .iter()
        .find(|m| m.contains(" DAEMON_STARTED "))
        .unwrap();
    // local0, notice.
    assert!(started.starts_with("<133>1 "), "{started}");
    assert!(started.contains("rule=\"lifecycle\""), "{started}");
    // The sleeper raised nothing.
    assert!(
        !messages.iter().any(|m| m.contains("quiet")),
        "{messages:?}"
    );

    // Mail over STARTTLS, logged in: one per alert.
    let mails = starttls.wait("three mails", |mails| mails.len() >= 3).await;
    for mail in &mails {
        assert!(mail.tls && mail.user.as_deref() == Some("tm"), "{mail:?}");
        assert_eq!(mail.from, "<tm@example.com>");
        assert_eq!(mail.to, ["<ops@example.com>"]);
    }
    let crash = mails
        .iter()
        .find(|mail| mail.data.contains("crasher exited unexpectedly"))
        .expect("the crash's mail");
    assert!(
        crash.data.contains(&format!(
            "Subject: [taskmaster {host}] crasher exited unexpectedly (rule crashes)"
        )),
        "{}",
        crash.data
    );
    assert!(
        crash.data.contains("last stderr:\r\nboom"),
        "{}",
        crash.data
    );

    // Mail over TLS from the first byte, to two mailboxes: the start, then the stop.
    tls.wait("the start's mail", |mails| mails.len() == 1).await;
    client.shutdown(proto::ShutdownRequest {}).await.unwrap();
    daemon.wait_exit().await;
    let mails = tls.mails();
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert!(
        mails[0].data.contains("taskmasterd daemon started"),
        "{}",
        mails[0].data
    );
    assert!(
        mails[1].data.contains("taskmasterd daemon stopping"),
        "{}",
        mails[1].data
    );
    assert!(mails.iter().all(|mail| mail.tls && mail.to.len() == 2));
    // And the stop reached syslog before the daemon exited.
    assert!(
        syslog
            .messages()
            .iter()
            .any(|m| m.contains(" DAEMON_STOPPING ")),
        "{:?}",
        syslog.messages()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_a_thousand_exits_is_a_bounded_number_of_alerts_and_a_count() {
    let webhook = Webhook::start().await;
    let config = Config::new()
        .program(
            Program::new("storm", "/bin/false")
                .numprocs(50)
                .starttime(0.0)
                .autorestart("always")
                .stdout("NONE")
                .stderr("NONE"),
        )
        .alerts(&format!(
            "
            sinks:
              hook: {{type: webhook, url: {}}}
            rules:
              crashes:
                events: unexpected_exit
                sinks: hook
                rate_limit: {{max: 5, per: 1s}}
            ",
            webhook.url
        ));
    let daemon = Daemon::start(config).await;
    let mut client = daemon.client().await;
    // From the first: exits before the test watches are alerts too.
    let mut watch = all_events(&mut client).await;
    let began = Instant::now();
    let mut exits = 0u64;
    while exits < 1000 {
        let event = tokio::time::timeout(DEADLINE, watch.message())
            .await
            .expect("events keep coming")
            .unwrap()
            .expect("an event");
        assert_ne!(
            event.kind(),
            EventKind::Lagged,
            "the test's watcher fell behind"
        );
        exits += u64::from(event.kind() == EventKind::Exited && !event.expected);
    }
    client
        .stop(proto::StopRequest {
            names: vec!["storm".into()],
            no_wait: false,
        })
        .await
        .unwrap();
    // Every exit published before this is in the stream before it.
    client.reopen(proto::ReopenRequest {}).await.unwrap();
    loop {
        let event = watch.message().await.unwrap().expect("an event");
        assert_ne!(
            event.kind(),
            EventKind::Lagged,
            "the test's watcher fell behind"
        );
        if event.kind() == EventKind::OutputReopened {
            break;
        }
        exits += u64::from(event.kind() == EventKind::Exited && !event.expected);
    }
    let storm = began.elapsed();
    // Every exit is an alert or counted in a digest: nothing is lost without a count.
    let count = |requests: &[Request]| -> u64 {
        requests
            .iter()
            .map(|r| r.body["count"].as_u64().unwrap())
            .sum()
    };
    let requests = webhook
        .wait(
            &format!("alerts and digests counting {exits} exits"),
            |requests| count(requests) >= exits,
        )
        .await;
    assert_eq!(count(&requests), exits);
    let digests: Vec<&Request> = (requests.iter())
        .filter(|request| request.body["alert"] == "digest")
        .collect();
    assert!(!digests.is_empty());
    for digest in &digests {
        let by_event = &digest.body["digest"]["by_event"];
        assert_eq!(by_event["unexpected_exit"], digest.body["count"]);
        assert!(
            digest.body["summary"]
                .as_str()
                .unwrap()
                .contains("held back by its rate limit")
        );
    }
    // At most 5 alerts and a digest per second, however many exits.
    let periods = storm.as_secs() + 2;
    assert!(
        requests.len() as u64 <= 6 * periods,
        "{} requests for {exits} exits in {storm:?}",
        requests.len()
    );
    assert!(requests.len() < 100, "{}", requests.len());
    eprintln!(
        "{exits} exits in {storm:?}: {} requests, {} of them digests",
        requests.len(),
        digests.len()
    );
    // The dispatcher kept up.
    let report = client
        .alerts_test(proto::AlertsTestRequest {
            rule: "crashes".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(report.missed_events, 0);
    assert_eq!((report.sinks[0].failures, report.sinks[0].dropped), (0, 0));
}

/// How long each of `rounds` takes: a kill -9 of `victim` until its replacement is spawned
/// (by the event), and a restart of `sleeper` by RPC until it answers.
async fn latencies(client: &mut Client, rounds: usize) -> (Vec<Duration>, Vec<Duration>) {
    let mut respawns = Vec::new();
    let mut restarts = Vec::new();
    for _ in 0..rounds {
        let victim = wait_state(client, "victim", State::Running).await;
        let mut watch = events(client).await;
        let killed = Instant::now();
        send(victim.pid, Signal::SIGKILL);
        next_of(&mut watch, EventKind::Spawned, "victim").await;
        respawns.push(killed.elapsed());
        let asked = Instant::now();
        let answer = client
            .restart(proto::RestartRequest {
                names: vec!["sleeper".into()],
                no_wait: false,
            })
            .await
            .unwrap()
            .into_inner();
        restarts.push(asked.elapsed());
        assert!(answer.results[0].ok, "{answer:?}");
    }
    (respawns, restarts)
}

fn median(mut durations: Vec<Duration>) -> Duration {
    durations.sort();
    durations[durations.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_receiver_blocks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let certificates = Certificates::new();
    write_file(dir.path(), "ca.pem", &certificates.ca, 0o644);
    write_file(dir.path(), "smtp.password", "pw\n", 0o600);
    let syslog = Syslog::bind(&dir.path().join("live.sock"));
    let webhook = Webhook::start().await;
    let smtp = Smtp::start(SmtpSecurity::StartTls, &certificates, "tm", "pw").await;
    let dead_syslog = DeadSyslog::bind(&dir.path().join("dead.sock"));
    let (dead_hook, dead_smtp) = (Silent::bind(), Silent::bind());
    let programs = || {
        Config::new()
            .program(Program::sleeper("victim").autorestart("always"))
            .program(Program::sleeper("sleeper"))
            // Alerts all the time, for the sinks to fall behind on.
            .program(
                Program::new("noise", "/bin/false")
                    .numprocs(5)
                    .starttime(0.0)
                    .autorestart("always")
                    .stdout("NONE")
                    .stderr("NONE"),
            )
    };
    let sinks = |syslog: &str, hook: &str, smtp: u16| {
        format!(
            "
            sinks:
              log: {{type: syslog, path: '{syslog}', timeout: 300ms, retries: 1, backoff: 100ms}}
              hook: {{type: webhook, url: '{hook}', timeout: 300ms, retries: 1, backoff: 100ms}}
              mail:
                type: email
                server: localhost
                port: {smtp}
                username: tm
                password_file: smtp.password
                from: tm@example.com
                to: ops@example.com
                ca: ca.pem
                timeout: 300ms
                retries: 1
                backoff: 100ms
            rules:
              everything:
                events: [unexpected_exit, backoff, fatal]
                sinks: [log, hook, mail]
                rate_limit: {{max: 10000, per: 1s}}
            "
        )
    };
    let live = programs().alerts(&sinks(
        &syslog.path.display().to_string(),
        &webhook.url,
        smtp.port,
    ));
    let mut daemon = Daemon::launch(live).in_dir(dir).start().await;
    let mut client = daemon.client().await;
    daemon.wait_running(&["victim", "sleeper"]).await;
    // Alerts flow to the live receivers.
    webhook
        .wait("the noise's alerts", |requests| requests.len() >= 5)
        .await;
    let (respawns, restarts) = latencies(&mut client, 5).await;
    let (respawn, restart) = (median(respawns), median(restarts));

    // The same with receivers that never answer.
    let dead_url = format!("http://127.0.0.1:{}/alerts", dead_hook.port);
    daemon.write_config(programs().alerts(&sinks(
        &dead_syslog.path.display().to_string(),
        &dead_url,
        dead_smtp.port,
    )));
    client.reload(proto::ReloadRequest {}).await.unwrap();
    let noise = status(&mut client).await;
    let restarts_before: u32 = noise.iter().map(|instance| instance.restarts).sum();
    let (dead_respawns, dead_restarts) = latencies(&mut client, 5).await;
    let (dead_respawn, dead_restart) = (median(dead_respawns), median(dead_restarts));
    eprintln!(
        "respawn after kill -9: {respawn:?} live, {dead_respawn:?} dead; restart: {restart:?} \
         live, {dead_restart:?} dead"
    );
    let slack = Duration::from_millis(250);
    assert!(
        dead_respawn <= respawn * 3 + slack,
        "a kill -9 is replaced in {dead_respawn:?} with dead receivers, {respawn:?} with live ones"
    );
    assert!(
        dead_restart <= restart * 3 + slack,
        "a restart takes {dead_restart:?} with dead receivers, {restart:?} with live ones"
    );
    // Meanwhile the noise went on: its crashes are still restarted.
    let noise = status(&mut client).await;
    let restarts_after: u32 = noise.iter().map(|instance| instance.restarts).sum();
    assert!(restarts_after > restarts_before);
    // The sinks are failing, and say so in counts.
    let report = expect("every sink to count what it failed", || {
        let mut client = client.clone();
        async move {
            let request = proto::AlertsTestRequest {
                rule: "everything".into(),
            };
            let report = client.alerts_test(request).await.unwrap().into_inner();
            let counted = (report.sinks.iter()).all(|sink| sink.failures > 0);
            counted.then_some(report)
        }
    })
    .await;
    for sink in &report.sinks {
        assert!(!sink.ok, "{report:?}");
        assert_eq!(sink.message, "no answer within 300ms", "{report:?}");
    }
    // Nor do they hold up the daemon's end for long.
    let asked = Instant::now();
    client.shutdown(proto::ShutdownRequest {}).await.unwrap();
    daemon.wait_exit().await;
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "{:?}",
        asked.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_test_sends_through_each_sink_of_the_rule_and_says_how_it_went() {
    let dir = tempfile::tempdir().unwrap();
    let syslog = Syslog::bind(&dir.path().join("syslog.sock"));
    let silent = Silent::bind();
    let config = Config::new()
        .program(Program::sleeper("sleeper"))
        .alerts(&format!(
            "
        sinks:
          log: {{type: syslog, path: '{{dir}}/syslog.sock'}}
          hook: {{type: webhook, url: 'http://127.0.0.1:{}/', timeout: 300ms}}
        rules:
          crashes: {{events: fatal, sinks: [log, hook]}}
        ",
            silent.port
        ));
    let daemon = Daemon::launch(config).in_dir(dir).start().await;
    let mut client = daemon.client().await;
    let report = client
        .alerts_test(proto::AlertsTestRequest {
            rule: "crashes".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let outcome: Vec<(&str, bool, &str)> = (report.sinks.iter())
        .map(|sink| (sink.name.as_str(), sink.ok, sink.message.as_str()))
        .collect();
    assert_eq!(
        outcome,
        [
            ("log", true, "delivered"),
            ("hook", false, "no answer within 300ms")
        ]
    );
    let messages = syslog.wait("the test alert", |m| !m.is_empty()).await;
    assert!(
        messages[0].contains(" TEST [taskmaster@32473 rule=\"crashes\" alert=\"test\""),
        "{}",
        messages[0]
    );
    assert!(
        messages[0].contains("test alert of rule crashes, asked by uid "),
        "{}",
        messages[0]
    );
    let error = client
        .alerts_test(proto::AlertsTestRequest {
            rule: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::NotFound);
    assert_eq!(
        error.message(),
        "no alert rule `nope`; the rules are crashes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_swaps_the_rules_and_delivers_what_was_queued() {
    // The first hook fails twice before it takes an alert: it is still retrying when the
    // reload takes it away.
    let first = Webhook::failing_first(2).await;
    let second = Webhook::start().await;
    let crasher = || {
        Program::new("crasher", "sh -c 'exit 3'")
            .starttime(0.0)
            .autorestart("never")
            .autostart(false)
    };
    let before = Config::new().program(crasher()).alerts(&format!(
        "
        sinks:
          first: {{type: webhook, url: '{}', retries: 3, backoff: 500ms}}
        rules:
          crashes: {{events: unexpected_exit, sinks: first}}
        ",
        first.url
    ));
    let daemon = Daemon::start(before).await;
    let mut client = daemon.client().await;
    let start = |client: &mut Client| {
        let mut client = client.clone();
        async move {
            client
                .start(proto::StartRequest {
                    names: vec!["crasher".into()],
                    no_wait: false,
                })
                .await
                .unwrap()
        }
    };
    let mut watch = events(&mut client).await;
    start(&mut client).await;
    let crash = next_of(&mut watch, EventKind::Exited, "crasher").await;
    first
        .wait("the first attempt", |requests| !requests.is_empty())
        .await;
    // Now the rule sends to the second hook, and a rejected config raises an alert too.
    daemon.write_config(Config::new().program(crasher()).alerts(&format!(
        "
        sinks:
          second: {{type: webhook, url: '{}'}}
        rules:
          crashes: {{events: [unexpected_exit, config_rejected], sinks: second}}
        ",
        second.url
    )));
    client.reload(proto::ReloadRequest {}).await.unwrap();
    // What the first hook had queued is delivered all the same, on its third try.
    let requests = first
        .wait("the third attempt", |requests| requests.len() == 3)
        .await;
    assert!(
        requests.iter().all(|r| r.body["event"]["seq"] == crash.seq),
        "{requests:?}"
    );
    start(&mut client).await;
    let again = next_of(&mut watch, EventKind::Exited, "crasher").await;
    let got = second
        .wait("the second crash", |requests| !requests.is_empty())
        .await;
    assert_eq!(got[0].body["event"]["seq"], again.seq);
    assert_eq!(first.requests().len(), 3);
    // A config with a secret written in it is refused, where it is, and alerted.
    daemon.write_config(Config::new().program(crasher()).alerts(&format!(
        "
        sinks:
          second: {{type: webhook, url: '{}', token: abcdefabcdefabcdefabcdef}}
        rules:
          crashes: {{events: [unexpected_exit, config_rejected], sinks: second}}
        ",
        second.url
    )));
    let refused = client.reload(proto::ReloadRequest {}).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    let text = std::fs::read_to_string(&daemon.config_path).unwrap();
    let (line, written) = (text.lines().enumerate())
        .find(|(_, written)| written.contains("token:"))
        .unwrap();
    let column = written.find("token:").unwrap() + 1;
    let config_path = daemon.config_path.display().to_string();
    assert!(
        refused.message().starts_with(&format!(
            "{config_path}:{}:{column}: alerts.sinks.second.token: a token is never written in \
             the config",
            line + 1
        )),
        "{}",
        refused.message()
    );
    let got = second
        .wait("the rejected config's alert", |requests| {
            requests.len() == 2
        })
        .await;
    assert_eq!(got[1].body["alert"], "config_rejected");
    assert!(
        (got[1].body["event"]["message"].as_str().unwrap()).contains("alerts.sinks.second.token"),
        "{}",
        got[1].body
    );
}
