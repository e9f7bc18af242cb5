//! Programs under their own identity: the uid, gid and groups the kernel shows for a `user:`
//! program, its environment, its output files, the config errors and warnings about users and
//! executables, and a distinct message for each way a spawn fails. Tests that change identities
//! need root (CI runs as root) and say so when skipped.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::unistd::{Group, User};
use taskmaster::proto::{self, State};

use crate::support::*;

/// The numbers of a `/proc/PID/status` line (`Uid:`, `Gid:`, `Groups:`).
fn status_ids(pid: u32, field: &str) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = (status.lines())
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {status}"));
    let mut ids: Vec<u32> = line
        .split_whitespace()
        .map(|id| id.parse().unwrap())
        .collect();
    if field == "Groups" {
        ids.sort_unstable();
    }
    ids
}

/// The environment of process `pid`.
fn environ(pid: u32) -> Vec<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    (environ.split(|byte| *byte == 0))
        .filter(|var| !var.is_empty())
        .map(|var| String::from_utf8_lossy(var).into_owned())
        .collect()
}

/// The value of variable `name` in `vars`.
fn var<'a>(vars: &'a [String], name: &str) -> Option<&'a str> {
    vars.iter()
        .find_map(|var| var.strip_prefix(&format!("{name}=")))
}

/// What a search of the daemon's PATH for `name` adds when it runs as a user that cannot
/// search one of its directories (a non-root run with `/root/...` on PATH): nothing as root.
fn unsearchable_note(name: &str) -> String {
    let path = std::env::var("PATH").unwrap();
    (path.split(':'))
        .find(|dir| {
            let looked = std::fs::metadata(Path::new(dir).join(name));
            looked.is_err_and(|error| error.kind() == std::io::ErrorKind::PermissionDenied)
        })
        .map_or_else(String::new, |dir| format!("; {dir}: Permission denied"))
}

/// Runs `command` (a daemon expected to refuse its config) until it exits, for at most
/// [`DEADLINE`] (a daemon that starts after all is stopped by its guard); its exit code and
/// what it wrote on stderr, kept in `stderr`.
fn refused(command: &mut Command, stderr: &std::path::Path) -> (Option<i32>, String) {
    let file = std::fs::File::create(stderr).unwrap();
    let mut daemon = Guard::spawn(
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file),
    );
    let status = daemon.wait_exit();
    (status.and_then(|status| status.code()), read(stderr))
}

/// Runs a command of the shadow tools (`useradd`, `groupadd`...) until it succeeds: another
/// process may hold the lock of /etc/passwd for a moment.
fn shadow_tool(program: &str, args: &[&str]) {
    let mut last = String::new();
    let done = poll(DEADLINE, || {
        let output = Command::new(program).args(args).output();
        match output {
            Ok(output) if output.status.success() => true,
            Ok(output) => {
                last = String::from_utf8_lossy(&output.stderr).into_owned();
                false
            }
            Err(error) => {
                last = error.to_string();
                false
            }
        }
    });
    assert!(done, "{program} {args:?}: {last}");
}

/// A user the test creates, with a primary group and two supplementary ones; all removed on
/// drop, whatever happened.
struct TestUser {
    name: String,
    primary: String,
    extra: [String; 2],
}

impl TestUser {
    fn create() -> TestUser {
        let base = format!("tmid{}", std::process::id());
        let user = TestUser {
            name: format!("{base}u"),
            primary: format!("{base}p"),
            extra: [format!("{base}a"), format!("{base}b")],
        };
        for group in [&user.primary, &user.extra[0], &user.extra[1]] {
            shadow_tool("groupadd", &[group]);
        }
        let extra = user.extra.join(",");
        shadow_tool(
            "useradd",
            &[
                "-M",
                "-N",
                "-g",
                &user.primary,
                "-G",
                &extra,
                "-d",
                "/nonexistent/taskmaster-test-home",
                "-s",
                "/usr/sbin/nologin",
                &user.name,
            ],
        );
        user
    }

    fn gid(name: &str) -> u32 {
        Group::from_name(name)
            .unwrap()
            .expect("the group")
            .gid
            .as_raw()
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).status();
        for group in [&self.primary, &self.extra[0], &self.extra[1]] {
            let _ = Command::new("groupdel").arg(group).status();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_runs_with_exactly_its_users_uid_gid_and_groups() {
    if !root_or_skip(
        "a_program_runs_with_exactly_its_users_uid_gid_and_groups",
        "to run programs as other users",
    ) {
        return;
    }
    let created = TestUser::create();
    let (nobody, nobody_group) = nobody();
    let daemon = Daemon::start(
        Config::new()
            .program(Program::sleeper("as_nobody").set("user", "nobody"))
            .program(Program::sleeper("as_created").set("user", &created.name))
            .program(
                Program::sleeper("in_group")
                    .set("user", &created.name)
                    .set("group", &created.extra[0])
                    .env("{ HOME: /srv/elsewhere, LOGNAME: someone }"),
            )
            .program(Program::sleeper("plain")),
    )
    .await;
    let pids = daemon
        .wait_running(&["as_nobody", "as_created", "in_group", "plain"])
        .await;

    let pid = pids["as_nobody"];
    let uid = nobody.uid.as_raw();
    let gid = nobody_group.gid.as_raw();
    // Real, effective, saved and filesystem ids, all of them.
    assert_eq!(status_ids(pid, "Uid"), [uid; 4]);
    assert_eq!(status_ids(pid, "Gid"), [gid; 4]);
    assert_eq!(
        status_ids(pid, "Groups"),
        [gid],
        "none of root's groups is kept"
    );
    let vars = environ(pid);
    assert_eq!(var(&vars, "HOME"), Some(&*nobody.dir.to_string_lossy()));
    assert_eq!(var(&vars, "USER"), Some("nobody"));
    assert_eq!(var(&vars, "LOGNAME"), Some("nobody"));

    // A user made for the test: its primary group, and each group that lists it.
    let created_uid = User::from_name(&created.name)
        .unwrap()
        .unwrap()
        .uid
        .as_raw();
    let primary = TestUser::gid(&created.primary);
    let (a, b) = (
        TestUser::gid(&created.extra[0]),
        TestUser::gid(&created.extra[1]),
    );
    let pid = pids["as_created"];
    assert_eq!(status_ids(pid, "Uid"), [created_uid; 4]);
    assert_eq!(status_ids(pid, "Gid"), [primary; 4]);
    let mut groups = vec![primary, a, b];
    groups.sort_unstable();
    assert_eq!(status_ids(pid, "Groups"), groups);
    let vars = environ(pid);
    assert_eq!(var(&vars, "USER"), Some(created.name.as_str()));
    assert_eq!(
        var(&vars, "HOME"),
        Some("/nonexistent/taskmaster-test-home")
    );

    // `group:` replaces the primary group, which then is not among the groups (as
    // initgroups(3) with that group); `env` wins over HOME and LOGNAME.
    let pid = pids["in_group"];
    assert_eq!(status_ids(pid, "Uid"), [created_uid; 4]);
    assert_eq!(status_ids(pid, "Gid"), [a; 4]);
    let mut groups = vec![a, b];
    groups.sort_unstable();
    assert_eq!(status_ids(pid, "Groups"), groups);
    let vars = environ(pid);
    assert_eq!(var(&vars, "HOME"), Some("/srv/elsewhere"));
    assert_eq!(var(&vars, "LOGNAME"), Some("someone"));
    assert_eq!(var(&vars, "USER"), Some(created.name.as_str()));

    // Without `user:` nothing changes: the daemon's identity and environment.
    let pid = pids["plain"];
    assert_eq!(status_ids(pid, "Uid"), [0; 4]);
    assert_eq!(
        var(&environ(pid), "HOME"),
        std::env::var("HOME").ok().as_deref()
    );
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_output_files_of_a_user_program_are_its_own() {
    let Some((nobody, group)) = nobody_as_root(
        "the_output_files_of_a_user_program_are_its_own",
        "to run programs as other users",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // So that nobody can reach the files at all (a temporary directory is root's, mode 0700).
    std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o755)).unwrap();
    let daemon = Daemon::launch(
        Program::new(
            "writer",
            "sh -c 'echo to-stdout; echo to-stderr >&2; exec sleep 1000'",
        )
        .starttime(0.2)
        .stoptime(1.0)
        .set("user", "nobody")
        .stderr("{dir}/made/for/writer/err.log"),
    )
    .in_dir(dir)
    .start()
    .await;
    daemon.wait_running(&["writer"]).await;
    let stdout = daemon.path("logs/writer.out.log");
    let stderr = daemon.path("made/for/writer/err.log");
    for (file, line) in [(&stdout, "to-stdout\n"), (&stderr, "to-stderr\n")] {
        expect("the output in its file", || async {
            (read(file) == line).then_some(())
        })
        .await;
        let metadata = std::fs::metadata(file).unwrap();
        assert_eq!(
            (metadata.uid(), metadata.gid()),
            (nobody.uid.as_raw(), group.gid.as_raw()),
            "{}",
            file.display()
        );
        assert_eq!(metadata.mode() & 0o777, 0o640);
        // The user reads its own output.
        let cat = Command::new("cat")
            .arg(file)
            .uid(nobody.uid.as_raw())
            .gid(group.gid.as_raw())
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&cat.stdout), line, "{cat:?}");
    }
    // The folders the daemon made stay its own (the user could swap files in a folder of its
    // own), and let the user through.
    for folder in ["logs", "made", "made/for", "made/for/writer"] {
        let metadata = std::fs::metadata(daemon.path(folder)).unwrap();
        assert_eq!(metadata.uid(), 0, "{folder}");
        assert_eq!(metadata.mode() & 0o777, 0o755, "{folder}");
    }
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_user_or_group_is_a_config_error_at_its_line_and_key() {
    let program = Program::sleeper("web")
        .set("user", "no-such-user-here")
        .set("group", "no-such-group-here");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("taskmaster.yaml");
    let socket = dir.path().join("t.sock");
    let log = dir.path().join("t.log");
    let pid = dir.path().join("t.pid");
    std::fs::write(
        &path,
        Config::from(program.clone()).file(dir.path(), &socket, &log, &pid),
    )
    .unwrap();
    let (code, stderr) = refused(&mut foreground(&path), &dir.path().join("stderr"));
    assert_eq!(code, Some(2), "{stderr}");
    let file = path.display();
    // Lines 10 and 11: after the daemon section, `web:`, cmd, starttime and stoptime.
    let user = format!(
        "{file}:10:11: programs.web.user: no user named \"no-such-user-here\" in the user database"
    );
    let group = format!(
        "{file}:11:12: programs.web.group: no group named \"no-such-group-here\" in the group \
         database"
    );
    assert!(stderr.contains(&user), "{stderr}");
    assert!(stderr.contains(&group), "{stderr}");

    // On reload: rejected whole, nothing changes.
    let daemon = Daemon::start(Program::sleeper("web")).await;
    let pids = daemon.wait_running(&["web"]).await;
    daemon.write_config(program);
    let mut client = daemon.client().await;
    let error = client.reload(proto::ReloadRequest {}).await.unwrap_err();
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    assert!(
        error.message().contains(&format!(
            "{}:10:11: programs.web.user: no user named",
            daemon.config_path.display()
        )),
        "{}",
        error.message()
    );
    assert_eq!(instance(&mut client, "web").await.pid, pids["web"]);
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_that_is_not_root_runs_programs_only_as_itself() {
    let Some((nobody, group)) = nobody_as_root(
        "a_daemon_that_is_not_root_runs_programs_only_as_itself",
        "to run programs as other users",
    ) else {
        return;
    };
    let (uid, gid) = (nobody.uid.as_raw(), group.gid.as_raw());
    // A directory of nobody's, where a daemon run as nobody keeps its socket and logs.
    let owned_by_nobody = || {
        let dir = tempfile::tempdir().unwrap();
        nix::unistd::chown(dir.path(), Some(nobody.uid), Some(group.gid)).unwrap();
        dir
    };
    let as_nobody = [
        "setpriv".to_string(),
        format!("--reuid={uid}"),
        format!("--regid={gid}"),
        "--clear-groups".to_string(),
        "--".to_string(),
    ];
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("skipped: it needs setpriv (util-linux) to run the daemon as nobody");
        return;
    }
    // As root, it is a user like another; as nobody, refused when the file is read.
    let dir = owned_by_nobody();
    let path = dir.path().join("taskmaster.yaml");
    let paths = ["t.sock", "t.log", "t.pid"].map(|name| dir.path().join(name));
    let text = Config::from(Program::sleeper("web").set("user", "root")).file(
        dir.path(),
        &paths[0],
        &paths[1],
        &paths[2],
    );
    std::fs::write(&path, text).unwrap();
    let mut command = Command::new(&as_nobody[0]);
    command
        .args(&as_nobody[1..])
        .arg(foreground(&path).get_program())
        .args(foreground(&path).get_args());
    let (code, stderr) = refused(&mut command, &dir.path().join("stderr"));
    assert_eq!(code, Some(2), "{stderr}");
    let expected = format!(
        "{}:10:11: programs.web.user: the daemon is not root (it runs as uid {uid}, gid {gid}): it \
         can run programs only as itself, not as user root (uid 0)",
        path.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(!paths[0].exists(), "it did not start");

    // Itself it may name: the program runs, as nobody, with nobody's environment.
    let words: Vec<&str> = as_nobody.iter().map(String::as_str).collect();
    let daemon = Daemon::launch(Program::sleeper("web").set("user", "nobody"))
        .in_dir(owned_by_nobody())
        .wrapped(&words)
        .start()
        .await;
    let pid = daemon.wait_running(&["web"]).await["web"];
    assert_eq!(status_ids(pid, "Uid"), [uid; 4]);
    assert_eq!(var(&environ(pid), "USER"), Some("nobody"));
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_spawn_error_says_what_failed() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("not-executable.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&script, PermissionsExt::from_mode(0o644)).unwrap();
    let shown = dir.path().display().to_string();
    let failing = |name: &str, cmd: &str| Program::new(name, cmd).startretries(0).starttime(0.2);
    let daemon = Daemon::launch(
        Config::new()
            .program(failing("not_on_path", "no-such-program-here --flag"))
            .program(
                failing("not_on_its_path", "sleep 1000")
                    .env("{ PATH: \"{dir}/bin:/nonexistent\" }"),
            )
            .program(failing("missing", "{dir}/no-such-binary"))
            .program(failing("missing_dir", "sleep 1000").workingdir("{dir}/no-such-dir"))
            .program(failing("not_a_dir", "sleep 1000").workingdir("{dir}/not-executable.sh"))
            .program(failing("not_executable", "{dir}/not-executable.sh")),
    )
    .in_dir(dir)
    .start()
    .await;
    let daemon_path = std::env::var("PATH").unwrap();
    let expected = [
        (
            "not_on_path",
            format!(
                "executable `no-such-program-here` not found on PATH {daemon_path} (the \
                 daemon's){}",
                unsearchable_note("no-such-program-here")
            ),
        ),
        (
            "not_on_its_path",
            format!(
                "executable `sleep` not found on PATH {shown}/bin:/nonexistent (from the \
                 program's env)"
            ),
        ),
        (
            "missing",
            format!("executable {shown}/no-such-binary: No such file or directory"),
        ),
        (
            "missing_dir",
            format!("workingdir {shown}/no-such-dir: No such file or directory"),
        ),
        (
            "not_a_dir",
            format!("workingdir {shown}/not-executable.sh: Not a directory"),
        ),
        (
            "not_executable",
            format!("executable {shown}/not-executable.sh: Permission denied"),
        ),
    ];
    let mut client = daemon.client().await;
    for (name, message) in expected {
        let fatal = wait_state(&mut client, name, State::Fatal).await;
        assert_eq!(fatal.spawn_error, message, "{name}");
    }
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawn_as_another_user_fails_with_what_that_user_may_not_do() {
    if !root_or_skip(
        "a_spawn_as_another_user_fails_with_what_that_user_may_not_do",
        "to run programs as other users",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Root's alone: nobody may neither enter it nor run what is in it.
    let private = dir.path().join("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, PermissionsExt::from_mode(0o700)).unwrap();
    std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o755)).unwrap();
    let script = private.join("script.sh");
    std::fs::write(&script, "#!/bin/sh\nexec sleep 1000\n").unwrap();
    std::fs::set_permissions(&script, PermissionsExt::from_mode(0o700)).unwrap();
    let as_nobody = |name: &str, cmd: &str| {
        Program::new(name, cmd)
            .startretries(0)
            .starttime(0.2)
            .set("user", "nobody")
    };
    let daemon = Daemon::launch(
        Config::new()
            .program(as_nobody("cannot_enter", "sleep 1000").workingdir("{dir}/private"))
            .program(as_nobody("cannot_run", "{dir}/private/script.sh"))
            .program(
                as_nobody("cannot_search", "no-such-program-here")
                    .env("{ PATH: \"{dir}/private:/nonexistent\" }"),
            )
            // The same, as root: it runs.
            .program(
                Program::new("as_root", "{dir}/private/script.sh")
                    .starttime(0.2)
                    .stoptime(1.0),
            ),
    )
    .in_dir(dir)
    .start()
    .await;
    let shown = daemon.dir.path().display().to_string();
    let mut client = daemon.client().await;
    let fatal = wait_state(&mut client, "cannot_enter", State::Fatal).await;
    assert_eq!(
        fatal.spawn_error,
        format!("workingdir {shown}/private: Permission denied (as user nobody)")
    );
    let fatal = wait_state(&mut client, "cannot_run", State::Fatal).await;
    assert_eq!(
        fatal.spawn_error,
        format!("executable {shown}/private/script.sh: Permission denied (as user nobody)")
    );
    // Root finds it nowhere; nobody cannot even look in one of the directories.
    let fatal = wait_state(&mut client, "cannot_search", State::Fatal).await;
    assert_eq!(
        fatal.spawn_error,
        format!(
            "executable `no-such-program-here` not found on PATH {shown}/private:/nonexistent \
             (from the program's env); a directory of it: Permission denied (as user nobody)"
        )
    );
    wait_state(&mut client, "as_root", State::Running).await;
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_setgroups_or_setuid_fails_the_spawn_before_the_program_runs() {
    if !root_or_skip(
        "a_failed_setgroups_or_setuid_fails_the_spawn_before_the_program_runs",
        "to run programs as other users",
    ) {
        return;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("skipped: it needs setpriv (util-linux) to take a capability from the daemon");
        return;
    }
    let (nobody, group) = nobody();
    let name = std::ffi::CString::new("nobody").unwrap();
    let groups: Vec<String> = (nix::unistd::getgrouplist(&name, group.gid).unwrap().iter())
        .map(|gid| gid.to_string())
        .collect();
    // A root daemon without CAP_SETUID (or CAP_SETGID): the kernel refuses that step, as it
    // would refuse it for any other reason.
    for (capability, message) in [
        (
            "setuid",
            format!(
                "setuid to user nobody ({}): Operation not permitted",
                nobody.uid
            ),
        ),
        (
            "setgid",
            format!(
                "setgroups to the groups of user nobody ({}): Operation not permitted",
                groups.join(", ")
            ),
        ),
    ] {
        let without = [
            "setpriv",
            &format!("--bounding-set=-{capability}"),
            &format!("--inh-caps=-{capability}"),
            "--",
        ]
        .map(str::to_string);
        let words: Vec<&str> = without.iter().map(String::as_str).collect();
        let daemon = Daemon::launch(
            Program::new("web", "touch {dir}/it-ran")
                .set("user", "nobody")
                .startretries(0)
                .starttime(0.2),
        )
        .wrapped(&words)
        .start()
        .await;
        let mut client = daemon.client().await;
        let fatal = wait_state(&mut client, "web", State::Fatal).await;
        assert_eq!(fatal.spawn_error, message, "without CAP_{capability}");
        assert!(!daemon.path("it-ran").exists(), "the program ran");
        drop(daemon);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_start_yet_is_a_warning_in_the_event_log_and_the_reload_answer() {
    let daemon = Daemon::start(
        Config::new()
            .program(Program::new("ghost", "no-such-program-here").autostart(false))
            .program(Program::sleeper("web").workingdir("{dir}/not-yet")),
    )
    .await;
    let file = daemon.config_path.display().to_string();
    let daemon_path = std::env::var("PATH").unwrap();
    let later = "; starting the program fails until that changes";
    let warnings = [
        format!(
            "{file}:7:10: programs.ghost.cmd: executable `no-such-program-here` not found on PATH \
             {daemon_path} (the daemon's){}{later}",
            unsearchable_note("no-such-program-here")
        ),
        format!(
            "{file}:13:17: programs.web.workingdir: workingdir {}/not-yet: No such file or \
             directory{later}",
            daemon.dir.path().display()
        ),
    ];
    expect("the warnings in the event log", || async {
        let log = daemon.log();
        (warnings.iter())
            .all(|warning| log.contains(&format!("WARN config: {warning}")))
            .then_some(())
    })
    .await;
    // The directory appears: the program starts (a warning rejects nothing).
    std::fs::create_dir(daemon.path("not-yet")).unwrap();
    let mut client = daemon.client().await;
    let started = client
        .start(proto::StartRequest {
            names: vec!["web".into()],
            no_wait: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(started.results[0].ok, "{started:?}");
    // Reload: the warnings that still hold, in the answer and from taskctl.
    let answer = client
        .reload(proto::ReloadRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.warnings, warnings[..1]);
    let taskctl = Command::new(env!("CARGO_BIN_EXE_taskctl"))
        .arg("-s")
        .arg(&daemon.socket)
        .arg("reload")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&taskctl.stdout);
    assert_eq!(taskctl.status.code(), Some(0), "{taskctl:?}");
    assert!(
        printed.ends_with(&format!(
            "unchanged: ghost, web\nwarning: {}\n",
            warnings[0]
        )),
        "{printed}"
    );
    drop(daemon);
}
